// SQL for reading instances, history, inboxes and the audit log.
#include <cstring>
#include <fmt/format.h>

#include <limits>

#include "store/sqlite/sql.hpp"

namespace durable::store::sqlite::sql {

InstanceRow read_instance(SQLite::Statement& s) {
    InstanceRow r;
    r.id = s.getColumn(0).getString();
    r.name = s.getColumn(1).getString();
    r.status = status_from_string(s.getColumn(2).getString()).value_or(Status::Pending);
    r.execution_id = s.getColumn(3).getString();
    r.input = col_opt(s, 4);
    r.output = col_opt(s, 5);
    r.error = col_opt(s, 6);
    r.custom_status = col_opt(s, 7);
    r.parent_id = col_opt(s, 8);
    r.parent_task_id = s.getColumn(9).isNull() ? -1 : s.getColumn(9).getInt64();
    r.created_at = s.getColumn(10).getInt64();
    r.updated_at = s.getColumn(11).getInt64();
    if (!s.getColumn(12).isNull()) r.completed_at = s.getColumn(12).getInt64();
    r.version = s.getColumn(13).getInt64();
    r.lease_owner = col_opt(s, 14);
    r.lease_expires_at = s.getColumn(15).getInt64();
    r.recoveries = s.getColumn(16).getInt64();
    r.trace_parent = col_opt(s, 17);
    r.orchestration_version = col_opt(s, 18);
    return r;
}

std::optional<InstanceRow> get_instance(Connection& c, const std::string& id) {
    auto s = c.stmt("SELECT " DURABLE_INSTANCE_COLUMNS " FROM instances WHERE id = ?");
    s->bind(1, id);
    if (!s->executeStep()) return std::nullopt;
    return read_instance(*s);
}

std::vector<HistoryRow> get_history(Connection& c, const std::string& id, std::int64_t from_seq, int limit) {
    // A row holds the events of one commit, newline-separated, from its seq on (writes.cpp):
    // start at the row holding from_seq.
    std::int64_t start = from_seq;
    if (from_seq > 0) {
        auto s = c.stmt("SELECT MAX(seq) FROM history WHERE instance_id = ? AND seq <= ?");
        s->bind(1, id);
        s->bind(2, static_cast<std::int64_t>(from_seq));
        if (s->executeStep() && !s->getColumn(0).isNull()) start = s->getColumn(0).getInt64();
    }
    std::vector<HistoryRow> out;
    auto s = c.stmt("SELECT seq, event FROM history WHERE instance_id = ? AND seq >= ? ORDER BY seq LIMIT ?");
    s->bind(1, id);
    s->bind(2, static_cast<std::int64_t>(start));
    s->bind(3, limit);  // a row holds one event or more: `limit` rows are enough
    while (s->executeStep()) {
        std::int64_t seq = s->getColumn(0).getInt64();
        const char* text = s->getColumn(1).getText();
        for (;;) {
            const char* end = std::strchr(text, '\n');
            if (seq >= from_seq) {
                if (limit >= 0 && static_cast<int>(out.size()) >= limit) return out;
                out.push_back(HistoryRow{seq, end ? std::string(text, end) : std::string(text)});
            }
            ++seq;
            if (!end) break;
            text = end + 1;
        }
    }
    if (limit >= 0 && static_cast<int>(out.size()) > limit) out.resize(static_cast<std::size_t>(limit));
    return out;
}

std::vector<InboxRow> get_inbox(Connection& c, const std::string& id, Millis now) {
    std::vector<InboxRow> out;
    auto s = c.stmt(
        "SELECT id, instance_id, visible_at, control, event FROM inbox WHERE instance_id = ? AND visible_at <= ? "
        "ORDER BY id");
    s->bind(1, id);
    s->bind(2, static_cast<std::int64_t>(now));
    while (s->executeStep()) {
        out.push_back(InboxRow{s->getColumn(0).getInt64(), s->getColumn(1).getString(), s->getColumn(2).getInt64(),
                               s->getColumn(3).getInt() != 0, s->getColumn(4).getString()});
    }
    return out;
}

std::vector<InstanceRow> query_instances(Connection& c, const InstanceFilter& f) {
    // Built per call: the filter's shape varies, and a query is not a hot path.
    std::string sql = "SELECT " DURABLE_INSTANCE_COLUMNS " FROM instances WHERE 1 = 1";
    if (!f.statuses.empty()) {
        sql += " AND status IN (";
        for (std::size_t i = 0; i < f.statuses.size(); ++i) sql += i ? ", ?" : "?";
        sql += ")";
    }
    if (f.name) sql += " AND name = ?";
    if (f.parent_id) sql += " AND parent_id = ?";
    // A time filter is always a two-sided range (an open end at the extreme): SQLite reads a
    // two-sided range from instances_by_created, but a one-sided one by walking the whole table
    // in id order. With nothing narrower, the keyset term stays off the primary key (`+id`) for
    // the same reason; the cost is then the window's size, never the table's.
    const bool by_created = f.created_from || f.created_to;
    const bool created_only = by_created && f.statuses.empty() && !f.name && !f.parent_id;
    if (by_created) sql += " AND created_at >= ? AND created_at < ?";
    if (f.after_id) sql += created_only ? " AND +id > ?" : " AND id > ?";
    sql += " ORDER BY id LIMIT ?";
    SQLite::Statement s(c.db(), sql);
    int i = 1;
    for (auto st : f.statuses) s.bind(i++, std::string(to_string(st)));
    if (f.name) s.bind(i++, *f.name);
    if (f.parent_id) s.bind(i++, *f.parent_id);
    if (by_created) {
        s.bind(i++, static_cast<std::int64_t>(f.created_from.value_or(std::numeric_limits<Millis>::min())));
        s.bind(i++, static_cast<std::int64_t>(f.created_to.value_or(std::numeric_limits<Millis>::max())));
    }
    if (f.after_id) s.bind(i++, *f.after_id);
    s.bind(i, f.limit);
    std::vector<InstanceRow> out;
    while (s.executeStep()) out.push_back(read_instance(s));
    return out;
}

std::optional<Millis> next_visible_after(Connection& c, Millis now) {
    auto s = c.stmt("SELECT MIN(visible_at) FROM inbox WHERE visible_at > ?");
    s->bind(1, static_cast<std::int64_t>(now));
    if (s->executeStep() && !s->getColumn(0).isNull()) return s->getColumn(0).getInt64();
    return std::nullopt;
}

std::vector<AuditEntry> audit_log(Connection& c, const std::optional<std::string>& instance_id, int limit) {
    std::vector<AuditEntry> out;
    // Two statements: an `(?1 IS NULL OR instance_id = ?1)` filter cannot use
    // audit_log_by_instance, so one instance's entries would be found by scanning the whole log.
    auto s = instance_id ? c.stmt("SELECT at, actor, action, instance_id, detail FROM audit_log WHERE instance_id = ?1 "
                                  "ORDER BY id DESC LIMIT ?2")
                         : c.stmt("SELECT at, actor, action, instance_id, detail FROM audit_log ORDER BY id DESC LIMIT ?2");
    bind_opt(*s, 1, instance_id);
    s->bind(2, limit);
    while (s->executeStep()) {
        out.push_back(AuditEntry{s->getColumn(0).getInt64(), s->getColumn(1).getString(), s->getColumn(2).getString(),
                                 col_opt(*s, 3), col_opt(*s, 4)});
    }
    return out;
}

}  // namespace durable::store::sqlite::sql
