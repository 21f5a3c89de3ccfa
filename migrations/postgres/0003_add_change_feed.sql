-- The change feed (as SQLite's 0006): one row per committed episode that appended history,
-- with a global sequence that only grows and has no holes, written in the same transaction as
-- the commit. Watchers in any process follow it (LISTEN durable_changes says when to look)
-- and read the events from `history`. Sequence numbers come from the one row of
-- change_feed_seq, taken at the end of a writer's transaction: commits of different processes
-- number their rows in commit order, so a reader never sees a later seq before an earlier one.
CREATE TABLE change_feed (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,            -- commit time, ms
    instance_id TEXT NOT NULL,
    name        TEXT NOT NULL,              -- the orchestration's name (for filters)
    status      TEXT NOT NULL,              -- the instance's status after the commit
    first_seq   BIGINT NOT NULL,            -- history seq of the commit's first event
    count       BIGINT NOT NULL             -- events the commit appended
);
CREATE INDEX change_feed_by_at ON change_feed (at);
CREATE TABLE change_feed_seq (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    seq  BIGINT NOT NULL
);
INSERT INTO change_feed_seq (seq) VALUES (0);

-- W3C trace context of the call that created the instance; NULL: its own trace.
ALTER TABLE instances ADD COLUMN trace_parent TEXT;
