// The PostgreSQL store's SQL for schedules: the writer's statements (create; the CAS step
// whose instance inserts are gated on the row the CAS RETURNs, as an episode's are; delete)
// and the reads.
#include <fmt/format.h>

#include "store/postgres/statements.hpp"

namespace durable::store::postgres {

#define DURABLE_PG_SCHEDULE_COLUMNS                                                               \
    "id, cron, orchestration, input, overlap, catchup_window_ms, jitter_ms, paused, note, next_fire, " \
    "last_fire, last_instance_id, buffered_tick, fired, missed, skipped, version, created_at, updated_at"

const std::vector<WriteStatement>& schedule_write_statements() {
    static const std::vector<WriteStatement> all = {
        {"durable_schedule_create",
         "WITH ins AS (INSERT INTO schedules (" DURABLE_PG_SCHEDULE_COLUMNS ") VALUES ($1::text, $2::text, $3::text, "
         "$4::text, $5::text, $6::bigint, $7::bigint, $8::boolean, $9::text, $10::bigint, $11::bigint, $12::text, "
         "$13::bigint, $14::bigint, $15::bigint, $16::bigint, 0, $17::bigint, $18::bigint) "
         "ON CONFLICT (id) DO NOTHING RETURNING id), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT $19::bigint, $20::text, $21::text, NULL, $22::text FROM ins WHERE $20::text IS NOT NULL) "
         "SELECT (SELECT id FROM ins)"},
        // The CAS first; the instances, their start events and the audit entries read `cas`, so
        // they happen only if it hit.
        {"durable_schedule_update",
         "WITH cas AS (UPDATE schedules SET cron = $2::text, orchestration = $3::text, input = $4::text, "
         "overlap = $5::text, catchup_window_ms = $6::bigint, jitter_ms = $7::bigint, paused = $8::boolean, "
         "note = $9::text, next_fire = $10::bigint, last_fire = $11::bigint, last_instance_id = $12::text, "
         "buffered_tick = $13::bigint, fired = $14::bigint, missed = $15::bigint, skipped = $16::bigint, "
         "updated_at = $17::bigint, version = version + 1 WHERE id = $1::text AND version = $18::bigint RETURNING id), "
         "kids AS (INSERT INTO instances (id, name, status, execution_id, input, parent_id, parent_task_id, "
         "created_at, updated_at, version, lease_owner, lease_expires_at, trace_parent) "
         "SELECT k.id, k.name, 'Pending', k.execution_id, k.input, NULL, -1, k.now, k.now, 0, NULL, 0, k.trace_parent "
         "FROM cas, json_to_recordset($19::json) AS k(id text, name text, execution_id text, input text, now bigint, "
         "trace_parent text) ON CONFLICT (id) DO NOTHING RETURNING id), "
         "kid_starts AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT k.id, k.start_at, false, k.start_event FROM json_to_recordset($19::json) AS k(id text, "
         "start_at bigint, start_event text) WHERE k.id IN (SELECT id FROM kids)), "
         "kid_audit AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT k.now, k.actor, 'schedule', k.id, k.name FROM json_to_recordset($19::json) AS k(id text, name text, "
         "now bigint, actor text) WHERE k.id IN (SELECT id FROM kids) AND k.actor <> ''), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT a.at, a.actor, a.action, a.instance_id, a.detail FROM cas, json_to_recordset($20::json) AS "
         "a(at bigint, actor text, action text, instance_id text, detail text)) "
         "SELECT (SELECT count(*) FROM cas), (SELECT json_agg(id) FROM kids)"},
        {"durable_schedule_delete",
         "WITH d AS (DELETE FROM schedules WHERE id = $1::text RETURNING id), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT $2::bigint, $3::text, $4::text, NULL, $5::text FROM d WHERE $3::text IS NOT NULL) "
         "SELECT count(*) FROM d"},
    };
    return all;
}

namespace {

std::optional<Millis> opt_ms(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return f.as<std::int64_t>();
}

ScheduleRow read_schedule(const pqxx::row& r) {
    ScheduleRow s;
    s.id = r[0].as<std::string>();
    s.cron = r[1].as<std::string>();
    s.orchestration = r[2].as<std::string>();
    s.input = opt_text(r[3]);
    s.overlap = r[4].as<std::string>();
    s.catchup_window_ms = r[5].as<std::int64_t>();
    s.jitter_ms = r[6].as<std::int64_t>();
    s.paused = r[7].as<bool>();
    s.note = opt_text(r[8]);
    s.next_fire = opt_ms(r[9]);
    s.last_fire = opt_ms(r[10]);
    s.last_instance_id = opt_text(r[11]);
    s.buffered_tick = opt_ms(r[12]);
    s.fired = r[13].as<std::int64_t>();
    s.missed = r[14].as<std::int64_t>();
    s.skipped = r[15].as<std::int64_t>();
    s.version = r[16].as<std::int64_t>();
    s.created_at = r[17].as<std::int64_t>();
    s.updated_at = r[18].as<std::int64_t>();
    return s;
}

std::vector<ScheduleRow> read_schedules(const pqxx::result& res) {
    std::vector<ScheduleRow> out;
    for (const auto& r : res) out.push_back(read_schedule(r));
    return out;
}

}  // namespace

std::optional<ScheduleRow> get_schedule(pqxx::transaction_base& tx, const std::string& id) {
    auto res = tx.exec("SELECT " DURABLE_PG_SCHEDULE_COLUMNS " FROM schedules WHERE id = " + literal(id));
    if (res.empty()) return std::nullopt;
    return read_schedule(res[0]);
}

std::vector<ScheduleRow> list_schedules(pqxx::transaction_base& tx) {
    return read_schedules(tx.exec("SELECT " DURABLE_PG_SCHEDULE_COLUMNS " FROM schedules ORDER BY id"));
}

std::vector<ScheduleRow> due_schedules(pqxx::transaction_base& tx, Millis now, int limit) {
    // Ticks due, then buffered ticks, each with a limit of its own (as SQLite's).
    auto out = read_schedules(tx.exec(fmt::format("SELECT " DURABLE_PG_SCHEDULE_COLUMNS " FROM schedules WHERE NOT "
                                                  "paused AND next_fire <= {} ORDER BY next_fire LIMIT {}",
                                                  now, limit)));
    for (auto& r : read_schedules(tx.exec(fmt::format(
             "SELECT " DURABLE_PG_SCHEDULE_COLUMNS " FROM schedules WHERE buffered_tick IS NOT NULL AND NOT paused AND "
             "(next_fire IS NULL OR next_fire > {}) ORDER BY buffered_tick LIMIT {}",
             now, limit)))) {
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<Millis> next_schedule_fire(pqxx::transaction_base& tx) {
    auto res = tx.exec("SELECT MIN(next_fire) FROM schedules WHERE NOT paused");
    if (res.empty()) return std::nullopt;
    return opt_ms(res[0][0]);
}

}  // namespace durable::store::postgres
