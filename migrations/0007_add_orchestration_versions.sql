-- Orchestration versions. Each instance records the version of its orchestration's code it
-- runs ('' for an unversioned registration; NULL until a host first runs it, which records
-- the newest version it registers), and a host claims only instances whose name and version
-- it registers, so old and new code share a database during a rolling deploy. Instances
-- created before versions existed ran unversioned code: they keep running it.
ALTER TABLE instances ADD COLUMN orchestration_version TEXT;
UPDATE instances SET orchestration_version = '';
-- Per orchestration name, the versions a host registers: a JSON object of arrays, refreshed
-- by its heartbeat, for readers that say which host runs what.
ALTER TABLE hosts ADD COLUMN orchestration_versions TEXT NOT NULL DEFAULT '{}';
