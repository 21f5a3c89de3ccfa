// SQL for creating instances, delivering messages, committing episodes, purging and auditing.
//
// commit_episode keeps the one-transaction episode rule: the CAS on `instances` runs first;
// when it touches no row nothing else is written and the result is a conflict.
#include <algorithm>
#include <fmt/format.h>

#include "durable/errors.hpp"
#include "store/sqlite/sql.hpp"

namespace durable::store::sqlite::sql {

void bind_opt(SQLite::Statement& s, int idx, const std::optional<std::string>& v) {
    if (v) {
        s.bind(idx, *v);
    } else {
        s.bind(idx);
    }
}

std::optional<std::string> col_opt(SQLite::Statement& s, int idx) {
    auto c = s.getColumn(idx);
    if (c.isNull()) return std::nullopt;
    return c.getString();
}

void append_audit(Connection& c, const AuditEntry& a) {
    auto s = c.stmt("INSERT INTO audit_log (at, actor, action, instance_id, detail) VALUES (?, ?, ?, ?, ?)");
    s->bind(1, static_cast<std::int64_t>(a.at));
    s->bind(2, a.actor);
    s->bind(3, a.action);
    bind_opt(*s, 4, a.instance_id);
    bind_opt(*s, 5, a.detail);
    s->exec();
}

static void delete_instance_rows(Connection& c, const std::string& id);

static void insert_inbox(Connection& c, const NewMessage& m) {
    auto s = c.stmt("INSERT INTO inbox (instance_id, visible_at, control, event) VALUES (?, ?, ?, ?)");
    s->bind(1, m.instance_id);
    s->bind(2, static_cast<std::int64_t>(m.visible_at));
    s->bind(3, m.control ? 1 : 0);
    s->bind(4, m.event);
    s->exec();
}

void create_instance(Connection& c, const NewInstance& inst, WriteResult& r) {
    bool replaced = false;
    if (inst.replace_finished) {
        std::optional<Status> status;
        {
            auto s = c.stmt("SELECT status FROM instances WHERE id = ?");
            s->bind(1, inst.id);
            if (s->executeStep()) status = status_from_string(s->getColumn(0).getString());
        }
        if (status && is_terminal(*status)) {
            delete_instance_rows(c, inst.id);
            replaced = true;
        }
    }
    {
        auto s = c.stmt(
            "INSERT INTO instances (id, name, status, execution_id, input, parent_id, parent_task_id, "
            "created_at, updated_at, version, lease_owner, lease_expires_at, trace_parent, orchestration_version) "
            "VALUES (?, ?, 'Pending', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING");
        s->bind(1, inst.id);
        s->bind(2, inst.name);
        s->bind(3, inst.execution_id);
        bind_opt(*s, 4, inst.input);
        bind_opt(*s, 5, inst.parent_id);
        s->bind(6, static_cast<std::int64_t>(inst.parent_task_id));
        s->bind(7, static_cast<std::int64_t>(inst.now));
        s->bind(8, static_cast<std::int64_t>(inst.now));
        bind_opt(*s, 9, inst.lease_owner);
        s->bind(10, static_cast<std::int64_t>(inst.lease_owner ? inst.lease_expires_at : 0));
        bind_opt(*s, 11, inst.trace_parent);
        bind_opt(*s, 12, inst.orchestration_version);
        s->exec();
    }
    r.ok = true;
    if (c.changes() == 0) return;  // idempotent: the id exists already
    insert_inbox(c, NewMessage{inst.id, inst.start_at, false, inst.start_event});
    r.inbox_id = c.last_insert_rowid();
    if (!inst.actor.empty()) {
        append_audit(c, AuditEntry{inst.now, inst.actor, replaced ? "restart" : "schedule", inst.id, inst.name});
    }
    r.ids.push_back(inst.id);
    r.count = replaced ? 1 : 0;
}

void send_message(Connection& c, const NewMessage& msg, const std::optional<AuditEntry>& audit,
                  WriteResult& r) {
    std::optional<Status> status;
    {
        auto s = c.stmt("SELECT status FROM instances WHERE id = ?");
        s->bind(1, msg.instance_id);
        if (s->executeStep()) status = status_from_string(s->getColumn(0).getString());
    }
    if (!status || is_terminal(*status)) {
        r.conflict = true;
        r.count = status ? 1 : 0;
        return;
    }
    insert_inbox(c, msg);
    if (audit) append_audit(c, *audit);
    r.ok = true;
    r.count = 1;
}

// The events of one commit go into ONE history row keyed by the first one's seq, separated by
// newlines: a commit's B-tree work and WAL pages do not grow with its events. Events are JSON,
// where a raw newline can only be whitespace (inside strings it is escaped), so one in an
// event is written as a space: same JSON, and the separator stays unambiguous.
static void append_history(Connection& c, const std::string& instance_id, std::int64_t first_seq,
                           const std::vector<std::string>& events) {
    if (events.empty()) return;
    std::size_t size = events.size();
    for (const auto& e : events) size += e.size();
    std::string packed;
    packed.reserve(size);
    for (const auto& e : events) {
        if (!packed.empty()) packed += '\n';
        auto from = packed.size();
        packed += e;
        std::replace(packed.begin() + static_cast<std::ptrdiff_t>(from), packed.end(), '\n', ' ');
    }
    auto s = c.stmt("INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)");
    s->bind(1, instance_id);
    s->bind(2, static_cast<std::int64_t>(first_seq));
    s->bindNoCopy(3, packed);
    s->exec();
}

void commit_episode(Connection& c, const EpisodeCommit& e, WriteResult& r) {
    {
        auto s = c.stmt(
            "UPDATE instances SET version = version + 1, status = ?, execution_id = ?, "
            "input = COALESCE(?, input), output = ?, error = ?, custom_status = ?, updated_at = ?, "
            "completed_at = CASE WHEN ? THEN ? ELSE NULL END, "
            "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, "
            "lease_expires_at = CASE WHEN ? THEN 0 ELSE MAX(lease_expires_at, ?) END, "
            "recoveries = CASE WHEN ? THEN 0 ELSE recoveries END, "
            "orchestration_version = COALESCE(orchestration_version, ?) "
            "WHERE id = ? AND version = ? AND lease_owner = ?");
        bool terminal = is_terminal(e.status);
        s->bind(1, std::string(to_string(e.status)));
        s->bind(2, e.execution_id);
        bind_opt(*s, 3, e.input);
        bind_opt(*s, 4, e.output);
        bind_opt(*s, 5, e.error);
        bind_opt(*s, 6, e.custom_status);
        s->bind(7, static_cast<std::int64_t>(e.now));
        s->bind(8, terminal ? 1 : 0);
        s->bind(9, static_cast<std::int64_t>(e.now));
        s->bind(10, e.release_lease ? 1 : 0);
        s->bind(11, e.release_lease ? 1 : 0);
        s->bind(12, static_cast<std::int64_t>(e.lease_expires_at));
        s->bind(13, e.progressed ? 1 : 0);
        bind_opt(*s, 14, e.orchestration_version);
        s->bind(15, e.instance_id);
        s->bind(16, static_cast<std::int64_t>(e.expected_version));
        s->bind(17, e.owner);
        s->exec();
    }
    if (c.changes() == 0) {
        r.conflict = true;
        return;
    }
    if (e.reset_history) {
        auto s = c.stmt("DELETE FROM history WHERE instance_id = ?");
        s->bind(1, e.instance_id);
        s->exec();
    }
    append_history(c, e.instance_id, e.first_seq, e.events);
    if (!e.events.empty()) {
        // One change-feed row per commit, in its transaction: watchers in any process follow
        // it. The name comes from the row the CAS above just updated (its page is hot).
        auto s = c.stmt(
            "INSERT INTO change_feed (at, instance_id, name, status, first_seq, count) "
            "SELECT ?, id, name, status, ?, ? FROM instances WHERE id = ?");
        s->bind(1, static_cast<std::int64_t>(e.now));
        s->bind(2, static_cast<std::int64_t>(e.first_seq));
        s->bind(3, static_cast<std::int64_t>(e.events.size()));
        s->bind(4, e.instance_id);
        s->exec();
    }
    if (is_terminal(e.status)) {
        // Nothing more can happen to a finished instance: drop what its inbox still holds, and
        // its activity tasks (a worker running one learns it was cancelled at its next
        // heartbeat; its completion finds no row).
        auto s = c.stmt("DELETE FROM inbox WHERE instance_id = ?");
        s->bind(1, e.instance_id);
        s->exec();
        auto t = c.stmt("DELETE FROM activity_tasks WHERE instance_id = ?");
        t->bind(1, e.instance_id);
        t->exec();
    } else {
        for (auto id : e.consumed_inbox) {
            auto s = c.stmt("DELETE FROM inbox WHERE id = ?");
            s->bind(1, static_cast<std::int64_t>(id));
            s->exec();
        }
    }
    for (const auto& inst : e.new_instances) {
        WriteResult ignored;
        create_instance(c, inst, ignored);
    }
    for (const auto& m : e.messages) {
        if (m.instance_id == e.instance_id) {
            if (!is_terminal(e.status)) insert_inbox(c, m);
            continue;
        }
        auto s = c.stmt(
            "INSERT INTO inbox (instance_id, visible_at, control, event) SELECT ?1, ?2, ?3, ?4 "
            "WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)");
        s->bind(1, m.instance_id);
        s->bind(2, static_cast<std::int64_t>(m.visible_at));
        s->bind(3, m.control ? 1 : 0);
        s->bind(4, m.event);
        s->exec();
    }
    for (const auto& t : e.tasks) {
        auto s = c.stmt(
            "INSERT INTO activity_tasks (instance_id, task_id, name, input, execution_id, visible_at, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        s->bind(1, t.instance_id);
        s->bind(2, static_cast<std::int64_t>(t.task_id));
        s->bind(3, t.name);
        bind_opt(*s, 4, t.input);
        s->bind(5, t.execution_id);
        s->bind(6, static_cast<std::int64_t>(t.visible_at));
        s->bind(7, static_cast<std::int64_t>(e.now));
        s->exec();
    }
    for (const auto& a : e.audit) append_audit(c, a);
    r.ok = true;
    r.new_version = e.expected_version + 1;
}

static void delete_instance_rows(Connection& c, const std::string& id) {
    {
        auto s = c.stmt("DELETE FROM history WHERE instance_id = ?");
        s->bind(1, id);
        s->exec();
    }
    {
        auto s = c.stmt("DELETE FROM inbox WHERE instance_id = ?");
        s->bind(1, id);
        s->exec();
    }
    {
        auto s = c.stmt("DELETE FROM activity_tasks WHERE instance_id = ?");
        s->bind(1, id);
        s->exec();
    }
    auto s = c.stmt("DELETE FROM instances WHERE id = ?");
    s->bind(1, id);
    s->exec();
}

void purge_instance(Connection& c, const std::string& id, WriteResult& r) {
    std::optional<Status> status;
    {
        auto s = c.stmt("SELECT status FROM instances WHERE id = ?");
        s->bind(1, id);
        if (s->executeStep()) status = status_from_string(s->getColumn(0).getString());
    }
    r.ok = true;
    if (!status) return;  // count 0: nothing to purge
    if (!is_terminal(*status)) {
        r.ok = false;
        r.conflict = true;
        return;
    }
    delete_instance_rows(c, id);
    r.count = 1;
}

void purge_instances(Connection& c, const PurgeFilter& f, WriteResult& r) {
    std::vector<Status> statuses;
    for (auto s : f.statuses.empty() ? std::vector<Status>{Status::Completed, Status::Failed, Status::Terminated}
                                     : f.statuses) {
        if (is_terminal(s)) statuses.push_back(s);
    }
    std::vector<std::string> ids;
    for (auto st : statuses) {
        auto s = c.stmt(
            "SELECT id FROM instances WHERE status = ? AND (? IS NULL OR completed_at < ?) LIMIT 100000");
        s->bind(1, std::string(to_string(st)));
        if (f.completed_before) {
            s->bind(2, static_cast<std::int64_t>(*f.completed_before));
            s->bind(3, static_cast<std::int64_t>(*f.completed_before));
        }
        while (s->executeStep()) ids.push_back(s->getColumn(0).getString());
    }
    for (const auto& id : ids) delete_instance_rows(c, id);
    r.ok = true;
    r.count = static_cast<std::int64_t>(ids.size());
}

void heartbeat(Connection& c, const HostRow& h) {
    auto s = c.stmt(
        "INSERT INTO hosts (id, hostname, pid, started_at, heartbeat_at, stopped_at, orchestrations, activities, "
        "lease_ms, orchestration_versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at, "
        "pid = excluded.pid, hostname = excluded.hostname, orchestrations = excluded.orchestrations, "
        "activities = excluded.activities, lease_ms = excluded.lease_ms, "
        "orchestration_versions = excluded.orchestration_versions");
    s->bind(1, h.id);
    s->bind(2, h.hostname);
    s->bind(3, static_cast<std::int64_t>(h.pid));
    s->bind(4, static_cast<std::int64_t>(h.started_at));
    s->bind(5, static_cast<std::int64_t>(h.heartbeat_at));
    if (h.stopped_at) {
        s->bind(6, static_cast<std::int64_t>(*h.stopped_at));
    } else {
        s->bind(6);
    }
    s->bind(7, names_json(h.orchestrations));
    s->bind(8, names_json(h.activities));
    s->bind(9, static_cast<std::int64_t>(h.lease_ms));
    s->bind(10, versions_json(h.orchestration_versions));
    s->exec();
}

void rewind_instances(Connection& c, const std::vector<Rewind>& rewinds, WriteResult& r) {
    // All or none: check every instance first (still Failed, history where the caller saw it).
    for (const auto& rw : rewinds) {
        auto s = c.stmt(
            "SELECT status, (SELECT MAX(seq) FROM history WHERE instance_id = ?1) FROM instances WHERE id = ?1");
        s->bind(1, rw.instance_id);
        if (!s->executeStep() || s->getColumn(0).getString() != "Failed") {
            r.conflict = true;
            return;
        }
        // A history row holds the events of one commit from its seq on: the caller's next seq
        // is past the last row's first seq.
        std::int64_t last_row = s->getColumn(1).isNull() ? -1 : s->getColumn(1).getInt64();
        if (rw.next_seq <= last_row) {
            r.conflict = true;
            return;
        }
    }
    for (const auto& rw : rewinds) {
        auto s = c.stmt(
            "UPDATE instances SET status = 'Running', output = NULL, error = NULL, completed_at = NULL, "
            "updated_at = ?, lease_owner = NULL, lease_expires_at = 0, recoveries = 0, version = version + 1 "
            "WHERE id = ? AND status = 'Failed'");
        s->bind(1, static_cast<std::int64_t>(rw.now));
        s->bind(2, rw.instance_id);
        s->exec();
        for (const auto& m : rw.messages) insert_inbox(c, m);
        if (rw.audit) append_audit(c, *rw.audit);
        r.ids.push_back(rw.instance_id);
    }
    r.ok = true;
    r.count = static_cast<std::int64_t>(rewinds.size());
}

}  // namespace durable::store::sqlite::sql
