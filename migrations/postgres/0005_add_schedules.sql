-- Recurring schedules (as SQLite's 0008): a cron expression (UTC) that starts instances of
-- one orchestration. Hosts fire due ticks under a CAS on `version`; a tick's instance id
-- derives from the schedule id and the tick time, so a tick starts at most one instance.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    orchestration TEXT NOT NULL,
    input TEXT,
    overlap TEXT NOT NULL DEFAULT 'skip',
    catchup_window_ms BIGINT NOT NULL DEFAULT 0,
    jitter_ms BIGINT NOT NULL DEFAULT 0,
    paused BOOLEAN NOT NULL DEFAULT false,
    note TEXT,
    next_fire BIGINT,
    last_fire BIGINT,
    last_instance_id TEXT,
    buffered_tick BIGINT,
    fired BIGINT NOT NULL DEFAULT 0,
    missed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX schedules_next_fire ON schedules (next_fire) WHERE NOT paused;
CREATE INDEX schedules_buffered_tick ON schedules (buffered_tick) WHERE buffered_tick IS NOT NULL;
