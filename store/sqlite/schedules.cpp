// SQL for schedules: create, the CAS step (the row, then the instances its ticks start, in the
// same transaction), delete, and the reads the scheduler and the client use.
#include "store/sqlite/sql.hpp"

namespace durable::store::sqlite::sql {

namespace {

void bind_opt_ms(SQLite::Statement& s, int idx, const std::optional<Millis>& v) {
    if (v) {
        s.bind(idx, static_cast<std::int64_t>(*v));
    } else {
        s.bind(idx);
    }
}

// Binds the schedule's own fields (cron .. skipped, 15 values) from index `first`; returns the next index.
int bind_schedule_fields(SQLite::Statement& s, int first, const ScheduleRow& row) {
    int i = first;
    s.bind(i++, row.cron);
    s.bind(i++, row.orchestration);
    bind_opt(s, i++, row.input);
    s.bind(i++, row.overlap);
    s.bind(i++, static_cast<std::int64_t>(row.catchup_window_ms));
    s.bind(i++, static_cast<std::int64_t>(row.jitter_ms));
    s.bind(i++, row.paused ? 1 : 0);
    bind_opt(s, i++, row.note);
    bind_opt_ms(s, i++, row.next_fire);
    bind_opt_ms(s, i++, row.last_fire);
    bind_opt(s, i++, row.last_instance_id);
    bind_opt_ms(s, i++, row.buffered_tick);
    s.bind(i++, row.fired);
    s.bind(i++, row.missed);
    s.bind(i++, row.skipped);
    return i;
}

std::optional<Millis> col_opt_ms(SQLite::Statement& s, int idx) {
    auto c = s.getColumn(idx);
    if (c.isNull()) return std::nullopt;
    return c.getInt64();
}

ScheduleRow read_schedule(SQLite::Statement& s) {
    ScheduleRow r;
    r.id = s.getColumn(0).getString();
    r.cron = s.getColumn(1).getString();
    r.orchestration = s.getColumn(2).getString();
    r.input = col_opt(s, 3);
    r.overlap = s.getColumn(4).getString();
    r.catchup_window_ms = s.getColumn(5).getInt64();
    r.jitter_ms = s.getColumn(6).getInt64();
    r.paused = s.getColumn(7).getInt64() != 0;
    r.note = col_opt(s, 8);
    r.next_fire = col_opt_ms(s, 9);
    r.last_fire = col_opt_ms(s, 10);
    r.last_instance_id = col_opt(s, 11);
    r.buffered_tick = col_opt_ms(s, 12);
    r.fired = s.getColumn(13).getInt64();
    r.missed = s.getColumn(14).getInt64();
    r.skipped = s.getColumn(15).getInt64();
    r.version = s.getColumn(16).getInt64();
    r.created_at = s.getColumn(17).getInt64();
    r.updated_at = s.getColumn(18).getInt64();
    return r;
}

}  // namespace

void create_schedule(Connection& c, const ScheduleRow& row, const std::optional<AuditEntry>& audit,
                     WriteResult& r) {
    auto s = c.stmt("INSERT INTO schedules (" DURABLE_SCHEDULE_COLUMNS
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING");
    s->bind(1, row.id);
    const int next = bind_schedule_fields(*s, 2, row);
    s->bind(next, static_cast<std::int64_t>(row.created_at));
    s->bind(next + 1, static_cast<std::int64_t>(row.updated_at));
    s->exec();
    if (c.changes() == 0) {
        r.conflict = true;
        return;
    }
    if (audit) append_audit(c, *audit);
    r.ok = true;
    r.count = 1;
}

void update_schedule(Connection& c, const ScheduleUpdate& u, WriteResult& r) {
    const auto& row = u.row;
    {
        auto s = c.stmt(
            "UPDATE schedules SET cron = ?, orchestration = ?, input = ?, overlap = ?, catchup_window_ms = ?, "
            "jitter_ms = ?, paused = ?, note = ?, next_fire = ?, last_fire = ?, last_instance_id = ?, "
            "buffered_tick = ?, fired = ?, missed = ?, skipped = ?, updated_at = ?, version = version + 1 "
            "WHERE id = ? AND version = ?");
        const int next = bind_schedule_fields(*s, 1, row);
        s->bind(next, static_cast<std::int64_t>(row.updated_at));
        s->bind(next + 1, row.id);
        s->bind(next + 2, row.version);
        s->exec();
    }
    if (c.changes() == 0) {
        r.conflict = true;  // another host (or client) moved it first: nothing else is written
        return;
    }
    for (const auto& inst : u.instances) {
        WriteResult created;
        create_instance(c, inst, created);
        for (auto& id : created.ids) r.ids.push_back(std::move(id));
    }
    for (const auto& a : u.audit) append_audit(c, a);
    r.ok = true;
    r.new_version = row.version + 1;
}

void delete_schedule(Connection& c, const std::string& id, const std::optional<AuditEntry>& audit, WriteResult& r) {
    auto s = c.stmt("DELETE FROM schedules WHERE id = ?");
    s->bind(1, id);
    s->exec();
    r.ok = true;
    r.count = c.changes();
    if (r.count > 0 && audit) append_audit(c, *audit);
}

std::optional<ScheduleRow> get_schedule(Connection& c, const std::string& id) {
    auto s = c.stmt("SELECT " DURABLE_SCHEDULE_COLUMNS " FROM schedules WHERE id = ?");
    s->bind(1, id);
    if (!s->executeStep()) return std::nullopt;
    return read_schedule(*s);
}

std::vector<ScheduleRow> list_schedules(Connection& c) {
    auto s = c.stmt("SELECT " DURABLE_SCHEDULE_COLUMNS " FROM schedules ORDER BY id");
    std::vector<ScheduleRow> out;
    while (s->executeStep()) out.push_back(read_schedule(*s));
    return out;
}

std::vector<ScheduleRow> due_schedules(Connection& c, Millis now, int limit) {
    std::vector<ScheduleRow> out;
    {
        auto s = c.stmt("SELECT " DURABLE_SCHEDULE_COLUMNS " FROM schedules WHERE paused = 0 AND next_fire <= ? "
                        "ORDER BY next_fire LIMIT ?");
        s->bind(1, static_cast<std::int64_t>(now));
        s->bind(2, limit);
        while (s->executeStep()) out.push_back(read_schedule(*s));
    }
    // Buffered ticks have a limit of their own: schedules whose last instance runs for long
    // never crowd out the ticks that are due.
    auto s = c.stmt("SELECT " DURABLE_SCHEDULE_COLUMNS " FROM schedules WHERE buffered_tick IS NOT NULL AND "
                    "paused = 0 AND (next_fire IS NULL OR next_fire > ?) ORDER BY buffered_tick LIMIT ?");
    s->bind(1, static_cast<std::int64_t>(now));
    s->bind(2, limit);
    while (s->executeStep()) out.push_back(read_schedule(*s));
    return out;
}

std::optional<Millis> next_schedule_fire(Connection& c) {
    auto s = c.stmt("SELECT MIN(next_fire) FROM schedules WHERE paused = 0");
    if (!s->executeStep()) return std::nullopt;
    return col_opt_ms(*s, 0);
}

}  // namespace durable::store::sqlite::sql
