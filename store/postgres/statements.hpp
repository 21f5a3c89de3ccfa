// store/postgres/statements.hpp — the SQL of the PostgreSQL store.
//
// Writes are one statement each: a data-modifying CTE whose dependent writes (history, inbox,
// tasks, audit) are gated on the row the lease CAS RETURNs, so an episode's writes happen
// together or not at all even though the statements of a batch are sent at once. They are
// prepared once per writer connection (PREPARE) and sent as `EXECUTE name(literals)` text,
// which lets libpqxx's pipeline carry a whole batch in one round trip. Literals are escaped
// here for standard_conforming_strings = on, which every connection sets.
//
// Reads are prepared statements on reader connections (exec_prepared, bound parameters),
// except query_instances, whose shape follows the filter.
#pragma once

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.hpp"

namespace durable::store::postgres {

// A statement of the writer, prepared by name on every writer connection.
struct WriteStatement {
    const char* name;
    const char* sql;
};
const std::vector<WriteStatement>& write_statements();

// A statement of the readers, prepared by name on every reader connection.
const std::vector<WriteStatement>& read_statements();

// The schedule statements of the writer (schedules.cpp), prepared with write_statements().
const std::vector<WriteStatement>& schedule_write_statements();

// Builds `EXECUTE name(arg, ...)` with each argument as an escaped literal.
class Call {
public:
    explicit Call(const char* statement);
    Call& text(std::string_view v);
    Call& opt(const std::optional<std::string>& v);
    Call& num(std::int64_t v);
    Call& flag(bool v);
    Call& json(const nlohmann::json& v);  // JSON text, NULL for an empty array
    Call& null();
    std::string done();

private:
    void sep();
    std::string sql_;
    bool first_ = true;
};

// An SQL string literal for standard_conforming_strings = on. Throws InvalidInput for a NUL
// byte, which PostgreSQL's text cannot hold.
std::string literal(std::string_view v);

// Row readers.
#define DURABLE_PG_INSTANCE_COLUMNS                                                              \
    "id, name, status, execution_id, input, output, error, custom_status, parent_id, "          \
    "parent_task_id, created_at, updated_at, completed_at, version, lease_owner, lease_expires_at, recoveries, "  \
    "trace_parent, orchestration_version"
InstanceRow read_instance(const pqxx::row& r);
std::optional<std::string> opt_text(const pqxx::field& f);

// Reads (run on a reader connection's transaction).
std::optional<InstanceRow> get_instance(pqxx::transaction_base& tx, const std::string& id);
std::vector<HistoryRow> get_history(pqxx::transaction_base& tx, const std::string& id, std::int64_t from_seq,
                                    int limit);
std::vector<InboxRow> get_inbox(pqxx::transaction_base& tx, const std::string& id, Millis now);
// Store::load_instances: three statements (rows, histories, inboxes) in one round trip.
std::vector<Store::Loaded> load_instances(pqxx::transaction_base& tx, const std::vector<std::string>& ids, Millis now);
std::vector<InstanceRow> query_instances(pqxx::transaction_base& tx, const InstanceFilter& f);
std::vector<std::pair<Status, std::int64_t>> count_by_status(pqxx::transaction_base& tx);
std::vector<Candidate> find_claimable(pqxx::transaction_base& tx, const std::vector<OrchestrationCode>& names, Millis now,
                                      int limit);
std::vector<std::string> claimable_task_names(pqxx::transaction_base& tx, const std::vector<std::string>& names);
std::vector<ChangeRow> read_changes(pqxx::transaction_base& tx, std::int64_t after_seq, int limit);
std::int64_t change_feed_head(pqxx::transaction_base& tx);
// A JSON array of strings as a vector (empty for anything else).
std::vector<std::string> names_from_json(const std::string& text);
std::vector<InboxRow> owned_inbox(pqxx::transaction_base& tx, const std::string& owner, Millis now, int limit);
std::optional<Millis> next_visible_after(pqxx::transaction_base& tx, Millis now);
std::vector<HostRow> list_hosts(pqxx::transaction_base& tx, Millis now);
std::vector<InstanceRow> list_leases(pqxx::transaction_base& tx);
std::vector<AuditEntry> audit_log(pqxx::transaction_base& tx, const std::optional<std::string>& instance_id,
                                  int limit);

// Schedules (schedules.cpp).
std::optional<ScheduleRow> get_schedule(pqxx::transaction_base& tx, const std::string& id);
std::vector<ScheduleRow> list_schedules(pqxx::transaction_base& tx);
std::vector<ScheduleRow> due_schedules(pqxx::transaction_base& tx, Millis now, int limit);
std::optional<Millis> next_schedule_fire(pqxx::transaction_base& tx);

}  // namespace durable::store::postgres
