-- Hosts that run different code (as SQLite's 0005): each host records the orchestration and
-- activity names it registers (JSON arrays of strings, refreshed by its heartbeat) and its
-- lease duration, so readers can tell which live host runs what. Activity tasks keep the
-- details of their last heartbeat, which a worker that takes a task over can read.
ALTER TABLE hosts ADD COLUMN orchestrations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN activities TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN lease_ms BIGINT NOT NULL DEFAULT 10000;
ALTER TABLE activity_tasks ADD COLUMN heartbeat_details TEXT;
