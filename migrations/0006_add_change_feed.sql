-- The change feed: one small row per committed episode that appended history, with a global
-- sequence that only grows, written in the same transaction as the commit. Any process on the
-- machine follows it (PRAGMA data_version says when to look, the sequence where to go on) and
-- reads the events themselves from `history`: the feed names the instance and the seq range,
-- it does not copy them. Pruned by age and count; pruning always keeps the newest row, so an
-- INTEGER PRIMARY KEY (max + 1) never hands out a sequence twice and has no holes.
CREATE TABLE change_feed (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,           -- commit time, ms
    instance_id TEXT NOT NULL,
    name        TEXT NOT NULL,              -- the orchestration's name (for filters)
    status      TEXT NOT NULL,              -- the instance's status after the commit
    first_seq   INTEGER NOT NULL,           -- history seq of the commit's first event
    count       INTEGER NOT NULL            -- events the commit appended
);

-- W3C trace context of the call that created the instance (traceparent, e.g.
-- 00-<trace id>-<parent span id>-01): whichever host runs the instance, now or after a
-- takeover, parents its spans under it. NULL: the instance starts its own trace.
ALTER TABLE instances ADD COLUMN trace_parent TEXT;
