-- The base schema of the PostgreSQL store: the same tables and columns as the SQLite one
-- (migrations/0001-0004), in PostgreSQL's types.
--
-- Times are milliseconds since the Unix epoch of the database SERVER's clock: hosts read
-- the time from the server (store/postgres: the store's clock), so hosts on machines whose
-- clocks disagree still agree on who holds which lease. created_at / completed_at are the
-- same clock.

-- Ids compare byte by byte (COLLATE "C"), whatever the database's locale: keyset paging
-- orders by id, as the SQLite store does, and time-ordered ids then page in creation order.
CREATE TABLE instances (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,          -- Pending, Running, Suspended, Completed, Failed, Terminated
    execution_id    TEXT NOT NULL,          -- changes on every continue-as-new
    input           TEXT,
    output          TEXT,
    error           TEXT,
    custom_status   TEXT,
    parent_id       TEXT,
    parent_task_id  BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    -- The lease CAS: a commit must find `version` unchanged and `lease_owner` itself.
    version         BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    recoveries      BIGINT NOT NULL DEFAULT 0  -- takeovers in a row without progress
);
CREATE INDEX instances_by_status ON instances (status, id);
CREATE INDEX instances_by_name ON instances (name, id);
CREATE INDEX instances_by_created ON instances (created_at);
CREATE INDEX instances_by_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX instances_by_lease_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_orphaned ON instances (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- One row per commit: the events it appended, newline-separated, keyed by the seq of the
-- first. Keyed by execution too: continue-as-new writes the new generation's first row in
-- the same statement that deletes the old generation's rows, so their keys must differ.
CREATE TABLE history (
    instance_id  TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    event        TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, seq)
);

-- Events waiting for an instance; ids are never reused (hosts remember which rows they
-- handed out).
CREATE TABLE inbox (
    id          BIGSERIAL PRIMARY KEY,
    instance_id TEXT NOT NULL,
    visible_at  BIGINT NOT NULL,
    control     BOOLEAN NOT NULL DEFAULT FALSE,  -- terminate / suspend / resume
    event       TEXT NOT NULL
);
CREATE INDEX inbox_by_visible ON inbox (visible_at);
CREATE INDEX inbox_by_instance ON inbox (instance_id, visible_at);

-- Activity work any host may take.
CREATE TABLE activity_tasks (
    id              BIGSERIAL PRIMARY KEY,
    instance_id     TEXT NOT NULL,
    task_id         BIGINT NOT NULL,
    name            TEXT NOT NULL,
    input           TEXT,
    execution_id    TEXT NOT NULL,
    visible_at      BIGINT NOT NULL,
    attempt         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (instance_id, execution_id, task_id)
);
CREATE INDEX activity_tasks_by_name ON activity_tasks (name, visible_at);
CREATE INDEX activity_tasks_by_lease_owner ON activity_tasks (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE hosts (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    stopped_at    BIGINT
);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    instance_id TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_by_instance ON audit_log (instance_id, id);
