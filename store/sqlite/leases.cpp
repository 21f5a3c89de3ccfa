// The lease protocol in SQL: claim (CAS on version, lease free or expired), renewal (expiry
// only, never the version), release, finding claimable work, and activity-task leases.
//
// Lease times are milliseconds of the one machine clock every host on this file shares
// (SQLite's WAL needs all processes on one machine in any case).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "store/sqlite/sql.hpp"

namespace durable::store::sqlite::sql {

std::string names_json(const std::vector<std::string>& names) {
    return nlohmann::json(names).dump();
}

std::string versions_json(const std::map<std::string, std::vector<std::string>>& versions) {
    return nlohmann::json(versions).dump();
}

std::map<std::string, std::vector<std::string>> versions_from_json(const std::string& text) {
    try {
        auto j = nlohmann::json::parse(text);
        if (j.is_object()) return j.get<std::map<std::string, std::vector<std::string>>>();
    } catch (const std::exception&) {
    }
    return {};
}

std::vector<std::string> names_from_json(const std::string& text) {
    try {
        auto j = nlohmann::json::parse(text);
        if (j.is_array()) return j.get<std::vector<std::string>>();
    } catch (const std::exception&) {
    }
    return {};
}

void claim_instances(Connection& c, const std::vector<Candidate>& cands, const std::string& owner,
                     Millis now, Millis lease_until, WriteResult& r) {
    for (const auto& cand : cands) {
        auto s = c.stmt(
            "UPDATE instances SET lease_owner = ?, lease_expires_at = ?, version = version + 1, "
            "recoveries = recoveries + (lease_owner IS NOT NULL) "
            "WHERE id = ? AND version = ? AND (lease_owner IS NULL OR lease_expires_at < ?) "
            "AND status NOT IN ('Completed', 'Failed', 'Terminated')");
        s->bind(1, owner);
        s->bind(2, static_cast<std::int64_t>(lease_until));
        s->bind(3, cand.id);
        s->bind(4, static_cast<std::int64_t>(cand.version));
        s->bind(5, static_cast<std::int64_t>(now));
        s->exec();
        if (c.changes() == 1) r.ids.push_back(cand.id);
    }
    r.ok = true;
    r.count = static_cast<std::int64_t>(r.ids.size());
}

void renew_leases(Connection& c, const std::string& owner, Millis now, Millis lease_until, Millis task_now,
                  Millis task_lease_until, WriteResult& r) {
    {
        auto s = c.stmt(
            "UPDATE instances SET lease_expires_at = ? WHERE lease_owner = ? AND lease_expires_at >= ?");
        s->bind(1, static_cast<std::int64_t>(lease_until));
        s->bind(2, owner);
        s->bind(3, static_cast<std::int64_t>(now));
        s->exec();
    }
    {
        auto s = c.stmt("SELECT id FROM instances WHERE lease_owner = ? AND lease_expires_at = ?");
        s->bind(1, owner);
        s->bind(2, static_cast<std::int64_t>(lease_until));
        while (s->executeStep()) r.ids.push_back(s->getColumn(0).getString());
    }
    {
        auto s = c.stmt(
            "UPDATE activity_tasks SET lease_expires_at = MAX(lease_expires_at, ?) WHERE lease_owner = ? "
            "AND lease_expires_at >= ?");
        s->bind(1, static_cast<std::int64_t>(task_lease_until));
        s->bind(2, owner);
        s->bind(3, static_cast<std::int64_t>(task_now));
        s->exec();
    }
    {
        auto s = c.stmt("SELECT id FROM activity_tasks WHERE lease_owner = ? AND lease_expires_at >= ?");
        s->bind(1, owner);
        s->bind(2, static_cast<std::int64_t>(task_lease_until));
        while (s->executeStep()) r.rows.push_back(s->getColumn(0).getInt64());
    }
    r.ok = true;
    r.count = static_cast<std::int64_t>(r.ids.size());
}

void release_leases(Connection& c, const std::string& owner, const std::vector<std::string>& ids, bool orphan,
                    WriteResult& r) {
    for (const auto& id : ids) {
        auto s = c.stmt(
            "UPDATE instances SET lease_owner = CASE WHEN ? THEN lease_owner ELSE NULL END, "
            "lease_expires_at = 0 WHERE id = ? AND lease_owner = ?");
        s->bind(1, orphan ? 1 : 0);
        s->bind(2, id);
        s->bind(3, owner);
        s->exec();
        r.count += c.changes();
    }
    {
        // Tasks this host had leased go back to the pool at once.
        auto s = c.stmt("UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 WHERE lease_owner = ? AND ?");
        s->bind(1, owner);
        s->bind(2, ids.empty() ? 1 : 0);
        s->exec();
    }
    r.ok = true;
}

std::vector<Candidate> find_claimable(Connection& c, const std::string& owner, const std::vector<OrchestrationCode>& code,
                                      Millis now, int limit) {
    std::vector<Candidate> out;
    if (code.empty()) return out;
    // `+name`: the name filter must not steer the planner off the lease and inbox indexes
    // (every instance of a name is no narrower than the due ones). The version filter: an
    // instance without a version yet, or one whose name and version (joined by a unit
    // separator, which names and versions do not hold) the host registers.
    std::vector<std::string> names, keys;
    for (const auto& k : code) {
        if (std::find(names.begin(), names.end(), k.name) == names.end()) names.push_back(k.name);
        keys.push_back(k.name + '\x1f' + k.version);
    }
    const std::string wanted = names_json(names);
    const std::string wanted_keys = names_json(keys);
    // Every name (kAnyName first, a host with remote code): the same statements without the
    // name filter; the names listed after kAnyName (the host's C++ code) keep their version
    // filter, so an instance of a version the host lacks waits for a host that has it. Both
    // forms bind alike.
    const bool any = code[0].name == kAnyName;
    std::unordered_set<std::string> seen;
    {
        // First, work a dead (or departed) host left behind: owner set, lease expired. It is
        // the oldest work there is; behind new work it would wait for every backlog to drain.
        auto s = any ? c.stmt("SELECT id, version FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
                              "AND status NOT IN ('Completed', 'Failed', 'Terminated') "
                              "AND (orchestration_version IS NULL OR +name NOT IN (SELECT value FROM json_each(?)) OR "
                              "name || char(31) || orchestration_version IN (SELECT value FROM json_each(?))) "
                              "ORDER BY lease_expires_at LIMIT ?")
                     : c.stmt("SELECT id, version FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
                              "AND status NOT IN ('Completed', 'Failed', 'Terminated') "
                              "AND +name IN (SELECT value FROM json_each(?)) "
                              "AND (orchestration_version IS NULL OR name || char(31) || orchestration_version IN "
                              "(SELECT value FROM json_each(?))) ORDER BY lease_expires_at LIMIT ?");
        s->bind(1, static_cast<std::int64_t>(now));
        s->bind(2, wanted);
        s->bind(3, wanted_keys);
        s->bind(4, limit);
        while (s->executeStep() && static_cast<int>(out.size()) < limit) {
            std::string id = s->getColumn(0).getString();
            if (seen.insert(id).second) out.push_back(Candidate{id, s->getColumn(1).getInt64(), true});
        }
    }
    if (static_cast<int>(out.size()) < limit) {
        // Then due inbox rows in the order they became visible; several rows of one instance
        // count once.
        auto s = any ? c.stmt("SELECT i.id, i.version, i.lease_owner IS NOT NULL FROM inbox b JOIN instances i ON "
                              "i.id = b.instance_id "
                              "WHERE b.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at < ?) "
                              "AND (i.status <> 'Suspended' OR b.control = 1) "
                              "AND i.status NOT IN ('Completed', 'Failed', 'Terminated') "
                              "AND (i.orchestration_version IS NULL OR +i.name NOT IN (SELECT value FROM json_each(?)) "
                              "OR i.name || char(31) || i.orchestration_version IN (SELECT value FROM json_each(?))) "
                              "ORDER BY b.visible_at LIMIT ?")
                     : c.stmt("SELECT i.id, i.version, i.lease_owner IS NOT NULL FROM inbox b JOIN instances i ON "
                              "i.id = b.instance_id "
                              "WHERE b.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at < ?) "
                              "AND (i.status <> 'Suspended' OR b.control = 1) "
                              "AND i.status NOT IN ('Completed', 'Failed', 'Terminated') "
                              "AND +i.name IN (SELECT value FROM json_each(?)) "
                              "AND (i.orchestration_version IS NULL OR i.name || char(31) || i.orchestration_version IN "
                              "(SELECT value FROM json_each(?))) "
                              "ORDER BY b.visible_at LIMIT ?");
        s->bind(1, static_cast<std::int64_t>(now));
        s->bind(2, static_cast<std::int64_t>(now));
        s->bind(3, wanted);
        s->bind(4, wanted_keys);
        s->bind(5, limit * 4);
        while (s->executeStep() && static_cast<int>(out.size()) < limit) {
            std::string id = s->getColumn(0).getString();
            if (seen.insert(id).second) {
                out.push_back(Candidate{id, s->getColumn(1).getInt64(), s->getColumn(2).getInt() != 0});
            }
        }
    }
    (void)owner;
    return out;
}

std::vector<InboxRow> owned_inbox(Connection& c, const std::string& owner, Millis now, int limit) {
    std::vector<InboxRow> out;
    auto s = c.stmt(
        "SELECT b.id, b.instance_id, b.visible_at, b.control, b.event FROM instances i "
        "JOIN inbox b ON b.instance_id = i.id AND b.visible_at <= ? "
        "WHERE i.lease_owner = ? ORDER BY b.id LIMIT ?");
    s->bind(1, static_cast<std::int64_t>(now));
    s->bind(2, owner);
    s->bind(3, limit);
    while (s->executeStep()) {
        out.push_back(InboxRow{s->getColumn(0).getInt64(), s->getColumn(1).getString(), s->getColumn(2).getInt64(),
                               s->getColumn(3).getInt() != 0, s->getColumn(4).getString()});
    }
    return out;
}

std::vector<ClaimedTask> claim_tasks(Connection& c, const std::vector<std::string>& names, const std::string& owner,
                                     Millis now, Millis lease_until, int limit) {
    std::vector<ClaimedTask> out;
    for (const auto& name : names) {
        if (static_cast<int>(out.size()) >= limit) break;
        std::vector<ClaimedTask> found;
        {
            auto s = c.stmt(
                "SELECT id, instance_id, execution_id, task_id, input, attempt, heartbeat_details, trace_parent "
                "FROM activity_tasks "
                "WHERE name = ? AND visible_at <= ? AND (lease_owner IS NULL OR lease_expires_at < ?) "
                "ORDER BY visible_at LIMIT ?");
            s->bind(1, name);
            s->bind(2, static_cast<std::int64_t>(now));
            s->bind(3, static_cast<std::int64_t>(now));
            s->bind(4, limit - static_cast<int>(out.size()));
            while (s->executeStep()) {
                ClaimedTask t;
                t.row_id = s->getColumn(0).getInt64();
                t.instance_id = s->getColumn(1).getString();
                t.execution_id = s->getColumn(2).getString();
                t.name = name;
                t.task_id = s->getColumn(3).getInt64();
                t.input = col_opt(*s, 4);
                t.attempt = s->getColumn(5).getInt64() + 1;
                t.heartbeat_details = col_opt(*s, 6);
                t.trace_parent = col_opt(*s, 7);
                found.push_back(std::move(t));
            }
        }
        for (auto& t : found) {
            auto s = c.stmt(
                "UPDATE activity_tasks SET lease_owner = ?, lease_expires_at = ?, attempt = attempt + 1 "
                "WHERE id = ? AND (lease_owner IS NULL OR lease_expires_at < ?)");
            s->bind(1, owner);
            s->bind(2, static_cast<std::int64_t>(lease_until));
            s->bind(3, static_cast<std::int64_t>(t.row_id));
            s->bind(4, static_cast<std::int64_t>(now));
            s->exec();
            if (c.changes() == 1) out.push_back(std::move(t));
        }
    }
    return out;
}

void complete_task(Connection& c, std::int64_t row_id, const std::string& owner, const NewMessage& completion,
                   WriteResult& r) {
    {
        auto s = c.stmt("DELETE FROM activity_tasks WHERE id = ? AND lease_owner = ?");
        s->bind(1, static_cast<std::int64_t>(row_id));
        s->bind(2, owner);
        s->exec();
    }
    if (c.changes() == 0) {
        r.conflict = true;
        return;
    }
    auto s = c.stmt(
        "INSERT INTO inbox (instance_id, visible_at, control, event) SELECT ?1, ?2, 0, ?3 "
        "WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)");
    s->bind(1, completion.instance_id);
    s->bind(2, static_cast<std::int64_t>(completion.visible_at));
    s->bind(3, completion.event);
    s->exec();
    r.ok = true;
}

void release_tasks(Connection& c, const std::string& owner, const std::vector<std::int64_t>& rows, WriteResult& r) {
    for (auto row : rows) {
        auto s = c.stmt("UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 WHERE id = ? AND lease_owner = ?");
        s->bind(1, static_cast<std::int64_t>(row));
        s->bind(2, owner);
        s->exec();
        r.count += c.changes();
    }
    r.ok = true;
}

void heartbeat_task(Connection& c, std::int64_t row_id, const std::string& owner, Millis lease_until,
                    const std::optional<std::string>& details, WriteResult& r) {
    auto s = c.stmt(
        "UPDATE activity_tasks SET lease_expires_at = MAX(lease_expires_at, ?), "
        "heartbeat_details = COALESCE(?, heartbeat_details) WHERE id = ? AND lease_owner = ?");
    s->bind(1, static_cast<std::int64_t>(lease_until));
    bind_opt(*s, 2, details);
    s->bind(3, static_cast<std::int64_t>(row_id));
    s->bind(4, owner);
    s->exec();
    if (c.changes() == 0) {
        r.conflict = true;
        return;
    }
    r.ok = true;
}

std::vector<std::string> claimable_task_names(Connection& c, const std::vector<std::string>& names, Millis now) {
    std::vector<std::string> out;
    for (const auto& name : names) {
        auto s = c.stmt(
            "SELECT 1 FROM activity_tasks WHERE name = ? AND visible_at <= ? "
            "AND (lease_owner IS NULL OR lease_expires_at < ?) LIMIT 1");
        s->bind(1, name);
        s->bind(2, static_cast<std::int64_t>(now));
        s->bind(3, static_cast<std::int64_t>(now));
        if (s->executeStep()) out.push_back(name);
    }
    return out;
}

std::vector<InstanceRow> list_leases(Connection& c, Millis now) {
    std::vector<InstanceRow> out;
    auto s = c.stmt("SELECT " DURABLE_INSTANCE_COLUMNS
                    " FROM instances WHERE lease_owner IS NOT NULL ORDER BY lease_owner, id LIMIT 10000");
    (void)now;
    while (s->executeStep()) out.push_back(read_instance(*s));
    return out;
}

std::vector<HostRow> list_hosts(Connection& c, Millis now) {
    std::vector<HostRow> out;
    auto s = c.stmt(
        "SELECT h.id, h.hostname, h.pid, h.started_at, h.heartbeat_at, h.stopped_at, "
        "(SELECT COUNT(*) FROM instances i WHERE i.lease_owner = h.id AND i.lease_expires_at >= ?), "
        "h.orchestrations, h.activities, h.lease_ms, h.orchestration_versions "
        "FROM hosts h ORDER BY h.started_at");
    s->bind(1, static_cast<std::int64_t>(now));
    while (s->executeStep()) {
        HostRow h;
        h.id = s->getColumn(0).getString();
        h.hostname = s->getColumn(1).getString();
        h.pid = s->getColumn(2).getInt64();
        h.started_at = s->getColumn(3).getInt64();
        h.heartbeat_at = s->getColumn(4).getInt64();
        if (!s->getColumn(5).isNull()) h.stopped_at = s->getColumn(5).getInt64();
        h.leases = s->getColumn(6).getInt64();
        h.orchestrations = names_from_json(s->getColumn(7).getString());
        h.activities = names_from_json(s->getColumn(8).getString());
        h.lease_ms = s->getColumn(9).getInt64();
        h.orchestration_versions = versions_from_json(s->getColumn(10).getString());
        out.push_back(std::move(h));
    }
    return out;
}

}  // namespace durable::store::sqlite::sql
