-- The base schema: instances, their history, their inbox, activity tasks, hosts, audit log.
-- Times are milliseconds since the Unix epoch (the machine clock all hosts share).

CREATE TABLE instances (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,          -- Pending, Running, Suspended, Completed, Failed, Terminated
    execution_id    TEXT NOT NULL,          -- changes on every continue-as-new
    input           TEXT,
    output          TEXT,
    error           TEXT,                   -- JSON {type, message, details} when Failed
    custom_status   TEXT,
    parent_id       TEXT,
    parent_task_id  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    completed_at    INTEGER
) WITHOUT ROWID;

CREATE INDEX instances_by_status ON instances (status, id);
CREATE INDEX instances_by_name ON instances (name, id);
CREATE INDEX instances_by_created ON instances (created_at);

-- One row per history event; loading an instance's history is one range scan.
CREATE TABLE history (
    instance_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    event       TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;

-- Events waiting for an instance: starts, raised events, timers (visible_at in the
-- future), completions of sub-orchestrations and remote activities, control messages.
-- Ids are never reused (AUTOINCREMENT): hosts remember which rows they handed out.
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    visible_at  INTEGER NOT NULL,
    control     INTEGER NOT NULL DEFAULT 0, -- 1 for terminate / suspend / resume
    event       TEXT NOT NULL
);
CREATE INDEX inbox_by_visible ON inbox (visible_at);
CREATE INDEX inbox_by_instance ON inbox (instance_id, visible_at);

-- Activity work any host may take (the happy path runs activities on the instance's own
-- host with no row here).
CREATE TABLE activity_tasks (
    id              INTEGER PRIMARY KEY,
    instance_id     TEXT NOT NULL,
    task_id         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    input           TEXT,
    execution_id    TEXT NOT NULL,
    visible_at      INTEGER NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    UNIQUE (instance_id, execution_id, task_id)
);
CREATE INDEX activity_tasks_by_name ON activity_tasks (name, visible_at);

CREATE TABLE hosts (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    instance_id TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_by_instance ON audit_log (instance_id, id);
