-- Change-feed rows waiting for their seq. A writer numbers its batch's rows at the end of its
-- transaction under the row lock of change_feed_seq, held until COMMIT (so seqs follow commit
-- order). Waiting for that lock made the commits of every host take turns, one fsync after
-- another: a writer that finds the lock taken (SKIP LOCKED) parks its rows here instead and
-- commits at once; the next writer to hold the lock numbers the parked rows (committed before
-- its own, so in front of them) in `ord` order, which for one instance is the order of its
-- commits.
CREATE TABLE change_feed_pending (
    ord         BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    count       BIGINT NOT NULL
);
