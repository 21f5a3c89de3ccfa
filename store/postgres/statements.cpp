// The SQL of the PostgreSQL store: the writer's statements (one data-modifying CTE per write,
// gated on the lease CAS), the readers' statements and the row readers.
#include "store/postgres/statements.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "durable/errors.hpp"

namespace durable::store::postgres {

// The server's clock in ms since the Unix epoch: task leases are read, compared and set in it
// (clock_timestamp(), not now(): a group-commit transaction may be older than the statement).
#define DURABLE_PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

// The statuses of a finished instance.
#define DURABLE_PG_FINAL "('Completed', 'Failed', 'Terminated')"

const std::vector<WriteStatement>& write_statements() {
    static const std::vector<WriteStatement> all = {
        // With $13 (replace_finished), a finished instance of the id goes first, with its rows;
        // that runs as a statement of its own just before (durable_replace_finished), since one
        // statement cannot delete and insert the same key.
        {"durable_replace_finished",
         "WITH t AS (SELECT id FROM instances WHERE id = $1::text AND status IN " DURABLE_PG_FINAL " FOR UPDATE), "
         "h AS (DELETE FROM history WHERE instance_id IN (SELECT id FROM t)), "
         "b AS (DELETE FROM inbox WHERE instance_id IN (SELECT id FROM t)), "
         "a AS (DELETE FROM activity_tasks WHERE instance_id IN (SELECT id FROM t)), "
         "i AS (DELETE FROM instances WHERE id IN (SELECT id FROM t) RETURNING id) "
         "SELECT count(*) FROM i"},
        {"durable_create",
         "WITH ins AS (INSERT INTO instances (id, name, status, execution_id, input, parent_id, parent_task_id, "
         "created_at, updated_at, version, lease_owner, lease_expires_at, trace_parent, orchestration_version) "
         "VALUES ($1::text, $2::text, 'Pending', $3::text, $4::text, $5::text, $6::bigint, $7::bigint, $7::bigint, 0, "
         "$8::text, $9::bigint, $14::text, $15::text) ON CONFLICT (id) DO NOTHING RETURNING id), "
         "box AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT id, $10::bigint, false, $11::text FROM ins RETURNING id), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT $7::bigint, $12::text, CASE WHEN $13::boolean THEN 'restart' ELSE 'schedule' END, id, $2::text "
         "FROM ins WHERE $12::text <> '') "
         "SELECT (SELECT id FROM box)"},
        // No row lock on the target: a message racing the instance's final commit lands in the
        // inbox of a finished instance, where nothing reads it (purge removes it).
        {"durable_send",
         "WITH t AS (SELECT status FROM instances WHERE id = $1::text), "
         "box AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT $1::text, $2::bigint, $3::boolean, $4::text FROM t WHERE t.status NOT IN " DURABLE_PG_FINAL
         " RETURNING id), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT $5::bigint, $6::text, $7::text, $8::text, $9::text FROM box WHERE $6::text IS NOT NULL) "
         "SELECT (SELECT status FROM t), (SELECT id FROM box)"},
        // The episode: the CAS first; everything else reads `cas` and so happens only if it hit.
        {"durable_commit",
         "WITH cas AS (UPDATE instances SET version = version + 1, status = $4::text, execution_id = $5::text, "
         "input = COALESCE($6::text, input), output = $7::text, error = $8::text, custom_status = $9::text, "
         "updated_at = $10::bigint, completed_at = CASE WHEN $11::boolean THEN $10::bigint ELSE NULL END, "
         "lease_owner = CASE WHEN $12::boolean THEN NULL ELSE lease_owner END, "
         "lease_expires_at = CASE WHEN $12::boolean THEN 0 ELSE GREATEST(lease_expires_at, $13::bigint) END, "
         "recoveries = CASE WHEN $14::boolean THEN 0 ELSE recoveries END, "
         "orchestration_version = COALESCE(orchestration_version, $24::text) "
         "WHERE id = $1::text AND version = $3::bigint AND lease_owner = $2::text RETURNING id, name), "
         // The change-feed row waits in the session's pending_changes for its seq, given at
         // the end of the transaction (durable_number_changes).
         "feed AS (INSERT INTO pending_changes (at, instance_id, name, status, first_seq, count) "
         "SELECT $10::bigint, id, name, $4::text, $16::bigint, $23::bigint FROM cas WHERE $17::text IS NOT NULL), "
         "done_tasks AS (DELETE FROM activity_tasks WHERE $11::boolean AND instance_id = $1::text "
         "AND EXISTS (SELECT 1 FROM cas)), "
         "old_history AS (DELETE FROM history WHERE $15::boolean AND instance_id = $1::text "
         "AND execution_id <> $5::text AND EXISTS (SELECT 1 FROM cas)), "
         "new_history AS (INSERT INTO history (instance_id, execution_id, seq, event) "
         "SELECT $1::text, $5::text, $16::bigint, $17::text FROM cas WHERE $17::text IS NOT NULL), "
         "consumed AS (DELETE FROM inbox WHERE instance_id = $1::text AND ($11::boolean OR id = ANY($18::bigint[])) "
         "AND EXISTS (SELECT 1 FROM cas)), "
         "kids AS (INSERT INTO instances (id, name, status, execution_id, input, parent_id, parent_task_id, "
         "created_at, updated_at, version, lease_owner, lease_expires_at, trace_parent, orchestration_version) "
         "SELECT k.id, k.name, 'Pending', k.execution_id, k.input, k.parent_id, k.parent_task_id, k.now, k.now, 0, "
         "k.lease_owner, COALESCE(k.lease_expires_at, 0), k.trace_parent, k.orchestration_version FROM cas, "
         "json_to_recordset($20::json) AS "
         "k(id text, name text, execution_id text, input text, parent_id text, parent_task_id bigint, now bigint, "
         "lease_owner text, lease_expires_at bigint, trace_parent text, orchestration_version text) "
         "ON CONFLICT (id) DO NOTHING RETURNING id), "
         "kid_starts AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT k.id, k.start_at, false, k.start_event FROM json_to_recordset($20::json) AS k(id text, "
         "start_at bigint, start_event text) WHERE k.id IN (SELECT id FROM kids)), "
         "kid_audit AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT k.now, k.actor, 'schedule', k.id, k.name FROM json_to_recordset($20::json) AS k(id text, "
         "name text, now bigint, actor text) WHERE k.actor <> '' AND k.id IN (SELECT id FROM kids)), "
         "messages AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT m.instance_id, m.visible_at, m.control, m.event FROM cas, json_to_recordset($19::json) AS "
         "m(instance_id text, visible_at bigint, control boolean, event text) "
         "WHERE CASE WHEN m.instance_id = $1::text THEN NOT $11::boolean "
         "ELSE EXISTS (SELECT 1 FROM instances x WHERE x.id = m.instance_id) OR m.instance_id IN (SELECT id FROM kids) "
         "END), "
         "tasks AS (INSERT INTO activity_tasks (instance_id, task_id, name, input, execution_id, visible_at, "
         "created_at, trace_parent) SELECT t.instance_id, t.task_id, t.name, t.input, t.execution_id, t.visible_at, "
         "$10::bigint, t.trace_parent FROM cas, json_to_recordset($21::json) AS t(instance_id text, task_id bigint, "
         "name text, input text, execution_id text, visible_at bigint, trace_parent text) ON CONFLICT DO NOTHING), "
         "audit AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT a.at, a.actor, a.action, a.instance_id, a.detail FROM cas, json_to_recordset($22::json) AS "
         "a(at bigint, actor text, action text, instance_id text, detail text)) "
         "SELECT count(*) FROM cas"},
        // Candidates are locked with SKIP LOCKED: a row another host is claiming right now is
        // passed over, not waited for.
        {"durable_claim",
         "WITH c AS (SELECT * FROM json_to_recordset($4::json) AS c(id text, v bigint)), "
         "pick AS (SELECT i.id FROM instances i JOIN c ON c.id = i.id AND i.version = c.v "
         "WHERE (i.lease_owner IS NULL OR i.lease_expires_at < $3::bigint) AND i.status NOT IN " DURABLE_PG_FINAL
         " FOR UPDATE OF i SKIP LOCKED) "
         "UPDATE instances i SET lease_owner = $1::text, lease_expires_at = $2::bigint, version = i.version + 1, "
         "recoveries = i.recoveries + CASE WHEN i.lease_owner IS NOT NULL THEN 1 ELSE 0 END "
         "FROM pick WHERE i.id = pick.id RETURNING i.id"},
        // Renewal moves the expiry only, never the version. Task leases are the server's clock's:
        // for them $2 and $3 give the lease duration.
        {"durable_renew",
         "WITH i AS (UPDATE instances SET lease_expires_at = GREATEST(lease_expires_at, $3::bigint) "
         "WHERE lease_owner = $1::text AND lease_expires_at >= $2::bigint RETURNING id), "
         "n AS (SELECT " DURABLE_PG_NOW_MS " AS ms), "
         "t AS (UPDATE activity_tasks SET lease_expires_at = GREATEST(lease_expires_at, "
         "(SELECT ms FROM n) + ($3::bigint - $2::bigint)) "
         "WHERE lease_owner = $1::text AND lease_expires_at >= (SELECT ms FROM n) RETURNING id) "
         "SELECT 'i', id, 0 FROM i UNION ALL SELECT 't', '', id FROM t"},
        {"durable_release",
         "WITH r AS (UPDATE instances SET lease_owner = CASE WHEN $3::boolean THEN lease_owner ELSE NULL END, "
         "lease_expires_at = 0 WHERE id IN (SELECT json_array_elements_text($2::json)) AND lease_owner = $1::text "
         "RETURNING id), "
         "t AS (UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 "
         "WHERE lease_owner = $1::text AND $4::boolean) "
         "SELECT count(*) FROM r"},
        {"durable_heartbeat",
         "INSERT INTO hosts (id, hostname, pid, started_at, heartbeat_at, stopped_at, orchestrations, activities, "
         "lease_ms, orchestration_versions) VALUES ($1::text, $2::text, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
         "$7::text, $8::text, $9::bigint, $10::text) "
         "ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = EXCLUDED.stopped_at, "
         "pid = EXCLUDED.pid, hostname = EXCLUDED.hostname, orchestrations = EXCLUDED.orchestrations, "
         "activities = EXCLUDED.activities, lease_ms = EXCLUDED.lease_ms, "
         "orchestration_versions = EXCLUDED.orchestration_versions"},
        // Rewinds ($1: instance id, next seq, now), all or none: every instance is locked, must
        // still be Failed with its history where the caller saw it; then each becomes Running,
        // unleased, with its inbox messages ($2) and audit entries ($3).
        {"durable_rewind",
         "WITH r AS (SELECT * FROM json_to_recordset($1::json) AS r(id text, next_seq bigint, now bigint)), "
         "locked AS (SELECT i.id, i.status, i.execution_id FROM instances i WHERE i.id IN (SELECT id FROM r) "
         "FOR UPDATE), "
         "good AS (SELECT r.id FROM r JOIN locked l ON l.id = r.id AND l.status = 'Failed' "
         "WHERE r.next_seq > COALESCE((SELECT max(h.seq) FROM history h WHERE h.instance_id = r.id "
         "AND h.execution_id = l.execution_id), -1)), "
         "go AS (SELECT (SELECT count(*) FROM good) = (SELECT count(*) FROM r) AS ok), "
         "up AS (UPDATE instances i SET status = 'Running', output = NULL, error = NULL, completed_at = NULL, "
         "updated_at = r.now, lease_owner = NULL, lease_expires_at = 0, recoveries = 0, version = i.version + 1 "
         "FROM r WHERE i.id = r.id AND (SELECT ok FROM go) RETURNING i.id), "
         "box AS (INSERT INTO inbox (instance_id, visible_at, control, event) "
         "SELECT m.instance_id, m.visible_at, m.control, m.event FROM json_to_recordset($2::json) AS "
         "m(instance_id text, visible_at bigint, control boolean, event text) WHERE (SELECT ok FROM go)), "
         "aud AS (INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "SELECT a.at, a.actor, a.action, a.instance_id, a.detail FROM json_to_recordset($3::json) AS "
         "a(at bigint, actor text, action text, instance_id text, detail text) WHERE (SELECT ok FROM go)) "
         "SELECT count(*) FROM up"},
        // Task leases in the server's clock: $3 is the lease duration.
        {"durable_claim_tasks",
         "WITH n AS (SELECT " DURABLE_PG_NOW_MS " AS ms), "
         "pick AS (SELECT id FROM activity_tasks WHERE name IN (SELECT json_array_elements_text($1::json)) "
         "AND visible_at <= (SELECT ms FROM n) AND (lease_owner IS NULL OR lease_expires_at < (SELECT ms FROM n)) "
         "ORDER BY visible_at LIMIT $4::bigint FOR UPDATE SKIP LOCKED) "
         "UPDATE activity_tasks t SET lease_owner = $2::text, lease_expires_at = (SELECT ms FROM n) + $3::bigint, "
         "attempt = t.attempt + 1 "
         "FROM pick WHERE t.id = pick.id "
         "RETURNING t.id, t.instance_id, t.execution_id, t.name, t.task_id, t.input, t.attempt, t.heartbeat_details, "
         "t.trace_parent"},
        {"durable_release_tasks",
         "WITH r AS (UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 "
         "WHERE id = ANY($2::bigint[]) AND lease_owner = $1::text RETURNING id) SELECT count(*) FROM r"},
        {"durable_heartbeat_task",
         "WITH r AS (UPDATE activity_tasks SET lease_expires_at = GREATEST(lease_expires_at, " DURABLE_PG_NOW_MS
         " + $3::bigint), "
         "heartbeat_details = COALESCE($4::text, heartbeat_details) WHERE id = $1::bigint AND lease_owner = $2::text "
         "RETURNING id) SELECT count(*) FROM r"},
        {"durable_complete_task",
         "WITH d AS (DELETE FROM activity_tasks WHERE id = $1::bigint AND lease_owner = $2::text RETURNING id), "
         "b AS (INSERT INTO inbox (instance_id, visible_at, control, event) SELECT $3::text, $4::bigint, false, "
         "$5::text FROM d WHERE EXISTS (SELECT 1 FROM instances WHERE id = $3::text)) "
         "SELECT count(*) FROM d"},
        {"durable_purge_one",
         "WITH t AS (SELECT status FROM instances WHERE id = $1::text FOR UPDATE), "
         "ok AS (SELECT 1 FROM t WHERE status IN " DURABLE_PG_FINAL "), "
         "h AS (DELETE FROM history WHERE instance_id = $1::text AND EXISTS (SELECT 1 FROM ok)), "
         "b AS (DELETE FROM inbox WHERE instance_id = $1::text AND EXISTS (SELECT 1 FROM ok)), "
         "a AS (DELETE FROM activity_tasks WHERE instance_id = $1::text AND EXISTS (SELECT 1 FROM ok)), "
         "i AS (DELETE FROM instances WHERE id = $1::text AND EXISTS (SELECT 1 FROM ok) RETURNING id) "
         "SELECT (SELECT status FROM t), (SELECT count(*) FROM i)"},
        {"durable_purge_many",
         "WITH ids AS (SELECT id FROM instances WHERE status IN (SELECT json_array_elements_text($1::json)) "
         "AND ($2::bigint IS NULL OR completed_at < $2::bigint) LIMIT 100000 FOR UPDATE), "
         "h AS (DELETE FROM history WHERE instance_id IN (SELECT id FROM ids)), "
         "b AS (DELETE FROM inbox WHERE instance_id IN (SELECT id FROM ids)), "
         "a AS (DELETE FROM activity_tasks WHERE instance_id IN (SELECT id FROM ids)), "
         "i AS (DELETE FROM instances WHERE id IN (SELECT id FROM ids) RETURNING id) "
         "SELECT count(*) FROM i"},
        {"durable_audit",
         "INSERT INTO audit_log (at, actor, action, instance_id, detail) "
         "VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text)"},
        // The end of every batch: numbers the change-feed rows the batch's commits left in
        // pending_changes, under the row lock of change_feed_seq (held to COMMIT, so seqs
        // follow commit order across processes), and moves them to change_feed. Takes no lock
        // when there are none.
        {"durable_number_changes",
         "WITH n AS (SELECT count(*) AS k FROM pending_changes), "
         "c AS (UPDATE change_feed_seq SET seq = seq + (SELECT k FROM n) WHERE (SELECT k FROM n) > 0 "
         "RETURNING seq - (SELECT k FROM n) AS base), "
         "moved AS (INSERT INTO change_feed (seq, at, instance_id, name, status, first_seq, count) "
         "SELECT (SELECT base FROM c) + row_number() OVER (ORDER BY ord), at, instance_id, name, status, first_seq, "
         "count FROM pending_changes WHERE EXISTS (SELECT 1 FROM c)) "
         "DELETE FROM pending_changes"},
        // Change-feed retention: older than $1 (ms) or beyond the newest $2 rows; the newest row
        // always stays.
        {"durable_prune_changes",
         "DELETE FROM change_feed WHERE seq < (SELECT max(seq) FROM change_feed) "
         "AND (at < $1::bigint OR seq <= (SELECT max(seq) FROM change_feed) - $2::bigint)"},
        // Resolving a batch whose COMMIT outcome is unknown.
        {"durable_version", "SELECT version, lease_owner, status FROM instances WHERE id = $1::text"},
    };
    return all;
}

const std::vector<WriteStatement>& read_statements() {
    static const std::vector<WriteStatement> all = {
        {"r_instance", "SELECT " DURABLE_PG_INSTANCE_COLUMNS " FROM instances WHERE id = $1"},
        // A row holds the events of one commit from its seq on: start at the row holding
        // from_seq, in the current execution.
        {"r_history",
         "WITH cur AS (SELECT execution_id FROM instances WHERE id = $1), "
         "st AS (SELECT COALESCE((SELECT max(seq) FROM history WHERE instance_id = $1 "
         "AND execution_id = (SELECT execution_id FROM cur) AND seq <= $2), $2) AS s) "
         "SELECT seq, event FROM history WHERE instance_id = $1 AND execution_id = (SELECT execution_id FROM cur) "
         "AND seq >= (SELECT s FROM st) ORDER BY seq LIMIT $3"},
        {"r_inbox",
         "SELECT id, instance_id, visible_at, control, event FROM inbox WHERE instance_id = $1 AND visible_at <= $2 "
         "ORDER BY id"},
        // Only instances of the orchestrations the host runs ($3: their names, a JSON array).
        {"r_orphaned",
         "SELECT id, version FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < $1 "
         "AND status NOT IN " DURABLE_PG_FINAL " AND (($3::json->>0 = '*' AND (orchestration_version IS NULL OR "
         "name NOT IN (SELECT json_array_elements_text($3::json)) OR name || chr(31) || orchestration_version IN "
         "(SELECT json_array_elements_text($4::json)))) OR (name IN (SELECT json_array_elements_text($3::json)) "
         "AND (orchestration_version IS NULL OR name || chr(31) || orchestration_version IN "
         "(SELECT json_array_elements_text($4::json))))) "
         "ORDER BY lease_expires_at LIMIT $2"},
        {"r_due",
         "SELECT i.id, i.version, i.lease_owner IS NOT NULL FROM inbox b JOIN instances i ON i.id = b.instance_id "
         "WHERE b.visible_at <= $1 AND (i.lease_owner IS NULL OR i.lease_expires_at < $1) "
         "AND (i.status <> 'Suspended' OR b.control) AND i.status NOT IN " DURABLE_PG_FINAL
         " AND (($3::json->>0 = '*' AND (i.orchestration_version IS NULL OR i.name NOT IN (SELECT "
         "json_array_elements_text($3::json)) OR i.name || chr(31) || i.orchestration_version IN (SELECT "
         "json_array_elements_text($4::json)))) OR (i.name IN (SELECT json_array_elements_text($3::json)) "
         "AND (i.orchestration_version IS NULL OR i.name || chr(31) || i.orchestration_version IN "
         "(SELECT json_array_elements_text($4::json))))) ORDER BY b.visible_at LIMIT $2"},
        {"r_claimable_task_names",
         "WITH c AS (SELECT " DURABLE_PG_NOW_MS " AS ms) "
         "SELECT n FROM json_array_elements_text($1::json) AS n WHERE EXISTS (SELECT 1 FROM activity_tasks, c "
         "WHERE name = n AND visible_at <= c.ms AND (lease_owner IS NULL OR lease_expires_at < c.ms))"},
        {"r_owned_inbox",
         "SELECT b.id, b.instance_id, b.visible_at, b.control, b.event FROM instances i "
         "JOIN inbox b ON b.instance_id = i.id AND b.visible_at <= $1 WHERE i.lease_owner = $2 ORDER BY b.id LIMIT $3"},
        {"r_next_visible", "SELECT min(visible_at) FROM inbox WHERE visible_at > $1"},
        {"r_hosts",
         "SELECT h.id, h.hostname, h.pid, h.started_at, h.heartbeat_at, h.stopped_at, "
         "(SELECT count(*) FROM instances i WHERE i.lease_owner = h.id AND i.lease_expires_at >= $1), "
         "h.orchestrations, h.activities, h.lease_ms, h.orchestration_versions FROM hosts h ORDER BY h.started_at"},
        {"r_leases",
         "SELECT " DURABLE_PG_INSTANCE_COLUMNS
         " FROM instances WHERE lease_owner IS NOT NULL ORDER BY lease_owner, id LIMIT 10000"},
        {"r_audit_one",
         "SELECT at, actor, action, instance_id, detail FROM audit_log WHERE instance_id = $1 ORDER BY id DESC LIMIT $2"},
        {"r_audit_all", "SELECT at, actor, action, instance_id, detail FROM audit_log ORDER BY id DESC LIMIT $1"},
        {"r_changes",
         "SELECT seq, at, instance_id, name, status, first_seq, count FROM change_feed WHERE seq > $1 ORDER BY seq "
         "LIMIT $2"},
        {"r_change_head", "SELECT COALESCE(max(seq), 0) FROM change_feed"},
    };
    return all;
}

std::string literal(std::string_view v) {
    std::string out;
    out.reserve(v.size() + 2);
    out += '\'';
    for (char c : v) {
        if (c == '\0') throw InvalidInput("a text holds a NUL byte, which PostgreSQL cannot store; remove it");
        if (c == '\'') out += '\'';
        out += c;
    }
    out += '\'';
    return out;
}

Call::Call(const char* statement) : sql_(fmt::format("EXECUTE {}(", statement)) {}

void Call::sep() {
    if (!first_) sql_ += ", ";
    first_ = false;
}
Call& Call::text(std::string_view v) {
    sep();
    sql_ += literal(v);
    return *this;
}
Call& Call::opt(const std::optional<std::string>& v) {
    if (!v) return null();
    return text(*v);
}
Call& Call::num(std::int64_t v) {
    sep();
    sql_ += std::to_string(v);
    return *this;
}
Call& Call::flag(bool v) {
    sep();
    sql_ += v ? "true" : "false";
    return *this;
}
Call& Call::json(const nlohmann::json& v) {
    if (v.is_array() && v.empty()) return null();
    return text(v.dump());
}
Call& Call::null() {
    sep();
    sql_ += "NULL";
    return *this;
}
std::string Call::done() {
    sql_ += ')';
    return std::move(sql_);
}

std::optional<std::string> opt_text(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return f.as<std::string>();
}

InstanceRow read_instance(const pqxx::row& r) {
    InstanceRow i;
    i.id = r[0].as<std::string>();
    i.name = r[1].as<std::string>();
    i.status = status_from_string(r[2].as<std::string>()).value_or(Status::Pending);
    i.execution_id = r[3].as<std::string>();
    i.input = opt_text(r[4]);
    i.output = opt_text(r[5]);
    i.error = opt_text(r[6]);
    i.custom_status = opt_text(r[7]);
    i.parent_id = opt_text(r[8]);
    i.parent_task_id = r[9].is_null() ? -1 : r[9].as<std::int64_t>();
    i.created_at = r[10].as<std::int64_t>();
    i.updated_at = r[11].as<std::int64_t>();
    if (!r[12].is_null()) i.completed_at = r[12].as<std::int64_t>();
    i.version = r[13].as<std::int64_t>();
    i.lease_owner = opt_text(r[14]);
    i.lease_expires_at = r[15].as<std::int64_t>();
    i.recoveries = r[16].as<std::int64_t>();
    i.trace_parent = opt_text(r[17]);
    i.orchestration_version = opt_text(r[18]);
    return i;
}

std::optional<InstanceRow> get_instance(pqxx::transaction_base& tx, const std::string& id) {
    auto r = tx.exec_prepared("r_instance", id);
    if (r.empty()) return std::nullopt;
    return read_instance(r[0]);
}

std::vector<HistoryRow> get_history(pqxx::transaction_base& tx, const std::string& id, std::int64_t from_seq,
                                    int limit) {
    // A row holds one event or more: `limit` rows are enough.
    std::int64_t rows = limit < 0 ? std::numeric_limits<std::int64_t>::max() : limit;
    auto res = tx.exec_prepared("r_history", id, from_seq, rows);
    std::vector<HistoryRow> out;
    for (const auto& row : res) {
        std::int64_t seq = row[0].as<std::int64_t>();
        const char* text = row[1].c_str();
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
    return out;
}

namespace {
std::vector<InboxRow> inbox_rows(const pqxx::result& res) {
    std::vector<InboxRow> out;
    out.reserve(res.size());
    for (const auto& r : res) {
        out.push_back(InboxRow{r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::int64_t>(),
                               r[3].as<bool>(), r[4].as<std::string>()});
    }
    return out;
}
}  // namespace

std::vector<InboxRow> get_inbox(pqxx::transaction_base& tx, const std::string& id, Millis now) {
    return inbox_rows(tx.exec_prepared("r_inbox", id, static_cast<std::int64_t>(now)));
}

std::vector<InstanceRow> query_instances(pqxx::transaction_base& tx, const InstanceFilter& f) {
    // Built per call: the filter's shape varies, and a query is not a hot path.
    std::string sql = "SELECT " DURABLE_PG_INSTANCE_COLUMNS " FROM instances WHERE true";
    if (!f.statuses.empty()) {
        sql += " AND status IN (";
        for (std::size_t i = 0; i < f.statuses.size(); ++i) {
            if (i) sql += ", ";
            sql += literal(to_string(f.statuses[i]));
        }
        sql += ")";
    }
    if (f.name) sql += " AND name = " + literal(*f.name);
    if (f.parent_id) sql += " AND parent_id = " + literal(*f.parent_id);
    if (f.created_from) sql += fmt::format(" AND created_at >= {}", *f.created_from);
    if (f.created_to) sql += fmt::format(" AND created_at < {}", *f.created_to);
    // ids are COLLATE "C" (migration 0001): they page in byte order, as SQLite orders them.
    if (f.id_prefix) {
        // LIKE 'prefix%' with the prefix's own wildcards escaped: on COLLATE "C" ids the
        // planner turns it into a range of the primary key.
        std::string pattern;
        for (char ch : *f.id_prefix) {
            if (ch == '%' || ch == '_' || ch == '\\') pattern += '\\';
            pattern += ch;
        }
        sql += " AND id LIKE " + literal(pattern + "%");
    }
    if (f.after_id) sql += (f.newest_first ? " AND id < " : " AND id > ") + literal(*f.after_id);
    sql += f.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
    sql += fmt::format(" LIMIT {}", f.limit);
    std::vector<InstanceRow> out;
    for (const auto& r : tx.exec(sql)) out.push_back(read_instance(r));
    return out;
}

std::vector<std::pair<Status, std::int64_t>> count_by_status(pqxx::transaction_base& tx) {
    std::vector<std::pair<Status, std::int64_t>> out;
    for (const auto& r : tx.exec("SELECT status, count(*) FROM instances GROUP BY status")) {
        if (auto st = status_from_string(r[0].as<std::string>())) out.emplace_back(*st, r[1].as<std::int64_t>());
    }
    return out;
}

std::vector<Candidate> find_claimable(pqxx::transaction_base& tx, const std::vector<OrchestrationCode>& code,
                                      Millis now, int limit) {
    std::vector<Candidate> out;
    if (code.empty()) return out;
    // Names, and name-version keys joined by a unit separator (as the SQLite store's).
    std::vector<std::string> names, keys;
    for (const auto& k : code) {
        if (std::find(names.begin(), names.end(), k.name) == names.end()) names.push_back(k.name);
        keys.push_back(k.name + '\x1f' + k.version);
    }
    const std::string wanted = nlohmann::json(names).dump();
    const std::string wanted_keys = nlohmann::json(keys).dump();
    std::unordered_set<std::string> seen;
    // First, work a dead (or departed) host left behind: the oldest work there is.
    for (const auto& r : tx.exec_prepared("r_orphaned", static_cast<std::int64_t>(now), limit, wanted, wanted_keys)) {
        auto id = r[0].as<std::string>();
        if (seen.insert(id).second) out.push_back(Candidate{id, r[1].as<std::int64_t>(), true});
    }
    if (static_cast<int>(out.size()) < limit) {
        for (const auto& r : tx.exec_prepared("r_due", static_cast<std::int64_t>(now), limit * 4, wanted, wanted_keys)) {
            if (static_cast<int>(out.size()) >= limit) break;
            auto id = r[0].as<std::string>();
            if (seen.insert(id).second) out.push_back(Candidate{id, r[1].as<std::int64_t>(), r[2].as<bool>()});
        }
    }
    return out;
}

std::vector<std::string> claimable_task_names(pqxx::transaction_base& tx, const std::vector<std::string>& names) {
    std::vector<std::string> out;
    if (names.empty()) return out;
    for (const auto& r : tx.exec_prepared("r_claimable_task_names", nlohmann::json(names).dump())) {
        out.push_back(r[0].as<std::string>());
    }
    return out;
}

std::vector<ChangeRow> read_changes(pqxx::transaction_base& tx, std::int64_t after_seq, int limit) {
    std::vector<ChangeRow> out;
    for (const auto& r : tx.exec_prepared("r_changes", after_seq, limit)) {
        ChangeRow c;
        c.seq = r[0].as<std::int64_t>();
        c.at = r[1].as<std::int64_t>();
        c.instance_id = r[2].as<std::string>();
        c.name = r[3].as<std::string>();
        c.status = status_from_string(r[4].as<std::string>()).value_or(Status::Running);
        c.first_seq = r[5].as<std::int64_t>();
        c.count = r[6].as<std::int64_t>();
        out.push_back(std::move(c));
    }
    return out;
}

std::int64_t change_feed_head(pqxx::transaction_base& tx) {
    return tx.exec_prepared("r_change_head")[0][0].as<std::int64_t>();
}

std::vector<std::string> names_from_json(const std::string& text) {
    try {
        auto j = nlohmann::json::parse(text);
        if (j.is_array()) return j.get<std::vector<std::string>>();
    } catch (const std::exception&) {
    }
    return {};
}

std::vector<InboxRow> owned_inbox(pqxx::transaction_base& tx, const std::string& owner, Millis now, int limit) {
    return inbox_rows(tx.exec_prepared("r_owned_inbox", static_cast<std::int64_t>(now), owner, limit));
}

std::optional<Millis> next_visible_after(pqxx::transaction_base& tx, Millis now) {
    auto r = tx.exec_prepared("r_next_visible", static_cast<std::int64_t>(now));
    if (r.empty() || r[0][0].is_null()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
}

std::vector<HostRow> list_hosts(pqxx::transaction_base& tx, Millis now) {
    std::vector<HostRow> out;
    for (const auto& r : tx.exec_prepared("r_hosts", static_cast<std::int64_t>(now))) {
        HostRow h;
        h.id = r[0].as<std::string>();
        h.hostname = r[1].as<std::string>();
        h.pid = r[2].as<std::int64_t>();
        h.started_at = r[3].as<std::int64_t>();
        h.heartbeat_at = r[4].as<std::int64_t>();
        if (!r[5].is_null()) h.stopped_at = r[5].as<std::int64_t>();
        h.leases = r[6].as<std::int64_t>();
        h.orchestrations = names_from_json(r[7].as<std::string>());
        h.activities = names_from_json(r[8].as<std::string>());
        h.lease_ms = r[9].as<std::int64_t>();
        try {
            auto v = nlohmann::json::parse(r[10].as<std::string>());
            if (v.is_object()) h.orchestration_versions = v.get<std::map<std::string, std::vector<std::string>>>();
        } catch (const std::exception&) {
        }
        out.push_back(std::move(h));
    }
    return out;
}

std::vector<InstanceRow> list_leases(pqxx::transaction_base& tx) {
    std::vector<InstanceRow> out;
    for (const auto& r : tx.exec_prepared("r_leases")) out.push_back(read_instance(r));
    return out;
}

std::vector<AuditEntry> audit_log(pqxx::transaction_base& tx, const std::optional<std::string>& instance_id,
                                  int limit) {
    auto res = instance_id ? tx.exec_prepared("r_audit_one", *instance_id, limit) : tx.exec_prepared("r_audit_all", limit);
    std::vector<AuditEntry> out;
    for (const auto& r : res) {
        out.push_back(AuditEntry{r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>(),
                                 opt_text(r[3]), opt_text(r[4])});
    }
    return out;
}

}  // namespace durable::store::postgres
