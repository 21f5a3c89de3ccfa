-- From this version on, a history row may hold several events: the events one commit
-- appended, newline-separated (compact JSON has no newlines), the row keyed by the seq of its
-- first event. One row per commit instead of one per event: a commit's B-tree inserts and WAL
-- pages no longer grow with its events. Rows written before hold one event each and read the
-- same way. No table changes; the version step makes older binaries, which would misread the
-- packed rows, refuse this file instead.
SELECT 1;
