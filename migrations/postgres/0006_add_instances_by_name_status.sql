-- The dashboard's instance list filters by orchestration name and status together: one
-- ordered range of (name, status, id) per page instead of checking one filter row by row.
CREATE INDEX instances_by_name_status ON instances (name, status, id);
