// store/sqlite/sql.hpp — the SQL of durable, one function per statement family.
//
// Write functions run on the commit thread's connection inside the group-commit transaction
// (and a savepoint per write); they fill a WriteResult. Read functions run on a pooled
// reader connection. Every statement is a string literal prepared once per connection.
#pragma once

#include "store/sqlite/connection.hpp"
#include "store/store.hpp"

namespace durable::store::sqlite::sql {

// writes: instances, messages, episodes, purge, audit (writes.cpp)
void create_instance(Connection& c, const NewInstance& inst, WriteResult& r);
void send_message(Connection& c, const NewMessage& msg, const std::optional<AuditEntry>& audit,
                  WriteResult& r);
void commit_episode(Connection& c, const EpisodeCommit& e, WriteResult& r);
void purge_instance(Connection& c, const std::string& id, WriteResult& r);
void purge_instances(Connection& c, const PurgeFilter& f, WriteResult& r);
void append_audit(Connection& c, const AuditEntry& a);
void heartbeat(Connection& c, const HostRow& h);
void rewind_instances(Connection& c, const std::vector<Rewind>& rewinds, WriteResult& r);

// writes: the lease protocol (leases.cpp)
void claim_instances(Connection& c, const std::vector<Candidate>& cands, const std::string& owner,
                     Millis now, Millis lease_until, WriteResult& r);
// Instance leases in the host's times (now, lease_until), task leases in the store's.
void renew_leases(Connection& c, const std::string& owner, Millis now, Millis lease_until, Millis task_now,
                  Millis task_lease_until, WriteResult& r);
void release_leases(Connection& c, const std::string& owner, const std::vector<std::string>& ids,
                    bool orphan, WriteResult& r);
std::vector<ClaimedTask> claim_tasks(Connection& c, const std::vector<std::string>& names,
                                     const std::string& owner, Millis now, Millis lease_until, int limit);
void complete_task(Connection& c, std::int64_t row_id, const std::string& owner,
                   const NewMessage& completion, WriteResult& r);
void release_tasks(Connection& c, const std::string& owner, const std::vector<std::int64_t>& rows, WriteResult& r);
void heartbeat_task(Connection& c, std::int64_t row_id, const std::string& owner, Millis lease_until,
                    const std::optional<std::string>& details, WriteResult& r);
std::vector<Candidate> find_claimable(Connection& c, const std::string& owner, const std::vector<OrchestrationCode>& code,
                                      Millis now, int limit);
std::vector<std::string> claimable_task_names(Connection& c, const std::vector<std::string>& names, Millis now);
std::vector<InboxRow> owned_inbox(Connection& c, const std::string& owner, Millis now, int limit);
std::vector<InboxRow> owned_inbox_since(Connection& c, const std::string& owner, Millis now, int limit,
                                       InboxCursor& cursor);
std::vector<InstanceRow> list_leases(Connection& c, Millis now);
std::vector<HostRow> list_hosts(Connection& c, Millis now);

// schedules (schedules.cpp)
void create_schedule(Connection& c, const ScheduleRow& row, const std::optional<AuditEntry>& audit, WriteResult& r);
void update_schedule(Connection& c, const ScheduleUpdate& u, WriteResult& r);
void delete_schedule(Connection& c, const std::string& id, const std::optional<AuditEntry>& audit, WriteResult& r);
std::optional<ScheduleRow> get_schedule(Connection& c, const std::string& id);
std::vector<ScheduleRow> list_schedules(Connection& c);
std::vector<ScheduleRow> due_schedules(Connection& c, Millis now, int limit);
std::optional<Millis> next_schedule_fire(Connection& c);

// reads (reads.cpp)
std::optional<InstanceRow> get_instance(Connection& c, const std::string& id);
std::vector<HistoryRow> get_history(Connection& c, const std::string& id, std::int64_t from_seq, int limit);
std::vector<InboxRow> get_inbox(Connection& c, const std::string& id, Millis now);
std::vector<InstanceRow> query_instances(Connection& c, const InstanceFilter& f);
std::vector<std::pair<Status, std::int64_t>> count_by_status(Connection& c);
std::optional<Millis> next_visible_after(Connection& c, Millis now);
std::vector<AuditEntry> audit_log(Connection& c, const std::optional<std::string>& instance_id, int limit);

// the change feed (change_feed.cpp)
std::vector<ChangeRow> read_changes(Connection& c, std::int64_t after_seq, int limit);
std::int64_t change_feed_head(Connection& c);
// Deletes rows older than `cutoff` or beyond the newest `max_rows`, never the newest row.
void prune_change_feed(Connection& c, Millis cutoff, std::int64_t max_rows);

// shared row helpers
#define DURABLE_INSTANCE_COLUMNS                                                                  \
    "id, name, status, execution_id, input, output, error, custom_status, parent_id, "          \
    "parent_task_id, created_at, updated_at, completed_at, version, lease_owner, lease_expires_at, recoveries, trace_parent, "     \
    "orchestration_version"
InstanceRow read_instance(SQLite::Statement& s);
#define DURABLE_SCHEDULE_COLUMNS                                                                  \
    "id, cron, orchestration, input, overlap, catchup_window_ms, jitter_ms, paused, note, next_fire, "  \
    "last_fire, last_instance_id, buffered_tick, fired, missed, skipped, version, created_at, updated_at"
void bind_opt(SQLite::Statement& s, int idx, const std::optional<std::string>& v);
std::optional<std::string> col_opt(SQLite::Statement& s, int idx);
// Names as a JSON array of strings (bound to `json_each(?)` and stored in the hosts row).
std::string names_json(const std::vector<std::string>& names);
std::vector<std::string> names_from_json(const std::string& text);
// Versions per orchestration name as a JSON object of string arrays (the hosts row).
std::string versions_json(const std::map<std::string, std::vector<std::string>>& versions);
std::map<std::string, std::vector<std::string>> versions_from_json(const std::string& text);

}  // namespace durable::store::sqlite::sql
