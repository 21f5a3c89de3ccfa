-- Recurring schedules: a cron expression (UTC) that starts instances of one orchestration.
-- Hosts fire due ticks under a CAS on `version`; a tick's instance id derives from the
-- schedule id and the tick time, so a tick starts at most one instance. `next_fire` is the
-- next tick not yet handled; the counters say what became of the ticks.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    orchestration TEXT NOT NULL,
    input TEXT,
    overlap TEXT NOT NULL DEFAULT 'skip',
    catchup_window_ms INTEGER NOT NULL DEFAULT 0,
    jitter_ms INTEGER NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    next_fire INTEGER,
    last_fire INTEGER,
    last_instance_id TEXT,
    buffered_tick INTEGER,
    fired INTEGER NOT NULL DEFAULT 0,
    missed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX schedules_next_fire ON schedules (next_fire) WHERE paused = 0;
CREATE INDEX schedules_buffered_tick ON schedules (buffered_tick) WHERE buffered_tick IS NOT NULL;
