-- The dashboard's instance list filters by orchestration name and status together. With only
-- instances_by_name and instances_by_status SQLite reads one and checks the other row by row:
-- a name with few instances in a common status (or none) scanned every instance of that
-- status (~120 ms at 1,000,000 instances). Keyed (name, status, id), each such page is one
-- ordered range.
CREATE INDEX instances_by_name_status ON instances (name, status, id);
