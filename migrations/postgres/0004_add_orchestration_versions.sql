-- Orchestration versions (as SQLite's 0007): each instance records the version of its
-- orchestration's code it runs ('' unversioned; NULL until a host first runs it), a host
-- claims only instances whose name and version it registers, and the hosts row lists the
-- versions each host registers (a JSON object of arrays). Instances created before versions
-- existed ran unversioned code: they keep running it.
ALTER TABLE instances ADD COLUMN orchestration_version TEXT;
UPDATE instances SET orchestration_version = '';
ALTER TABLE hosts ADD COLUMN orchestration_versions TEXT NOT NULL DEFAULT '{}';
