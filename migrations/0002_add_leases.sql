-- Concurrency columns: the compare-and-swap version and the lease of the host working on
-- an instance or an activity task. A lease is free when lease_owner is NULL, expired when
-- lease_expires_at < now (ms). An expired lease whose owner is still set marks work a dead
-- host left behind, which any host may take over.

ALTER TABLE instances ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN lease_owner TEXT;
ALTER TABLE instances ADD COLUMN lease_expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_by_lease_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_orphaned ON instances (lease_expires_at) WHERE lease_owner IS NOT NULL;

ALTER TABLE activity_tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE activity_tasks ADD COLUMN lease_expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX activity_tasks_by_lease_owner ON activity_tasks (lease_owner) WHERE lease_owner IS NOT NULL;
