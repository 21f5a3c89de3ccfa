-- Hosts that run different code. Each host records the orchestration and activity names it
-- registers (JSON arrays of strings, refreshed by its heartbeat) and its lease duration, so
-- readers can tell which live host (heartbeat within two leases, not stopped) runs what, and
-- say why an instance waits. Activity tasks keep the details of their last heartbeat, which a
-- worker that takes a task over can read.
ALTER TABLE hosts ADD COLUMN orchestrations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN activities TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 10000;
ALTER TABLE activity_tasks ADD COLUMN heartbeat_details TEXT;
