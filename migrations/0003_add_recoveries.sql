-- Poison protection: how many times in a row an instance was taken over from a host that
-- left it behind (crashed, fenced or stopped mid-work) without an episode making progress
-- since. Past the host's limit the instance is failed instead of being retried forever.
ALTER TABLE instances ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_by_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
