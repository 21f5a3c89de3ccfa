// durable/client.hpp — starting, inspecting and steering orchestration instances.
//
// A Client needs only the database: it may live in a worker process (Host::client(), whose
// new instances start on that host at once) or in any other process on the same machine.
// Every write is durable when the call returns.
//
// Thread safety: a Client may be copied and used from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "durable/database.hpp"
#include "durable/history.hpp"
#include "durable/schedule.hpp"
#include "durable/status.hpp"

namespace durable {

using Json = nlohmann::json;

namespace detail {
struct ClientAttachment;
struct VersionCache;
}

struct InstanceState {
    std::string id, name, execution_id;
    Status status = Status::Pending;
    Json input, output, custom_status;
    Json error;  // {type, message, details} when Failed
    std::optional<std::string> parent_id;
    std::int64_t created_at_ms = 0, updated_at_ms = 0;
    std::optional<std::int64_t> completed_at_ms;
    std::optional<std::string> lease_owner;
    std::int64_t lease_expires_at_ms = 0;
    // The version of its orchestration's code the instance runs ("" unversioned, or not
    // decided yet: the first host to run it records the newest version it registers).
    std::string version;
};

// What scheduling a caller-chosen id that exists already does (ScheduleOptions::if_exists).
enum class IfExists {
    // Create nothing and answer the existing instance, whatever its input: an idempotent retry
    // of a schedule call. ScheduleResult::created says it was not created.
    Return,
    // Throw InstanceExists.
    Fail,
    // If the existing instance has finished (Completed, Failed, Terminated): delete it and its
    // history and start anew with the new input, in one transaction. If it is still running:
    // throw InstanceExists (terminate it first).
    Restart,
};

struct ScheduleOptions {
    // A caller-chosen id (non-empty, UTF-8); what happens when it exists already is
    // `if_exists`. Prefer ids that grow with time: random ids cost several times more per
    // instance (each dirties its own B-tree pages). Default: a time-ordered UUIDv7.
    std::optional<std::string> instance_id;
    std::optional<std::chrono::system_clock::time_point> start_at;  // delayed start
    // Ties the instance's logs and spans (and its sub-orchestrations') to the caller's trace.
    // Default: the instance id.
    std::optional<std::string> correlation_id;
    // What to do when `instance_id` exists already.
    IfExists if_exists = IfExists::Return;
    // The caller's W3C trace context (a `traceparent` header value): the instance's spans
    // join that trace under the caller's span, on every host, across takeovers. Throws
    // InvalidInput if it is not a valid traceparent. None: the instance starts its own trace.
    std::optional<std::string> traceparent;
    // The version of the orchestration's code to run (see OrchestratorSettings). Default: the
    // newest version the attached host registers, else the newest a live host registers,
    // else the newest version of the first host that runs it.
    std::optional<std::string> version;
};

struct RestartOptions {
    // false: the new instance takes the old one's id (which must have finished; it and its
    // history are replaced). true: it gets a new generated id and the old one stays.
    bool new_id = false;
};

struct QueryFilter {
    std::vector<Status> statuses;
    std::optional<std::string> name;
    std::optional<std::chrono::system_clock::time_point> created_from, created_to;
    std::optional<std::string> id_prefix;  // only ids that start with it
    std::optional<std::string> parent_id;  // only sub-orchestrations of this instance
    bool newest_first = false;             // descending id order (`after` pages towards older ids)
};

struct Page {
    std::vector<InstanceState> instances;
    std::optional<std::string> next;  // pass as `after` for the next page
};

// What a schedule call did.
struct ScheduleResult {
    std::string id;
    bool created = true;    // false: the id existed and was left as it is (IfExists::Return)
    bool replaced = false;  // a finished instance with this id was replaced (IfExists::Restart)
    Status status = Status::Pending;  // the instance's status as the call saw it
};

// A host that has used the database (from its heartbeats).
struct HostInfo {
    std::string id, hostname;
    std::int64_t pid = 0;
    std::int64_t started_at_ms = 0, heartbeat_at_ms = 0;
    std::optional<std::int64_t> stopped_at_ms;  // set when it stopped gracefully
    std::int64_t leases = 0;                    // unexpired instance leases it holds
    std::vector<std::string> orchestrations;    // names it registers: it claims only these
    std::vector<std::string> activities;        // activity names it runs
    std::int64_t lease_ms = 0;                  // its lease duration (it heartbeats every half lease)
    // Per orchestration name, the versions it registers ("" unversioned): it claims only
    // instances of these versions.
    std::map<std::string, std::vector<std::string>> versions;

    // Live: not stopped, and heard from within two of its leases.
    bool live_at(std::int64_t now_ms) const { return !stopped_at_ms && heartbeat_at_ms + 2 * lease_ms >= now_ms; }
};

// An instance lease: who holds the instance, and until when.
struct LeaseInfo {
    std::string instance_id, name;
    Status status = Status::Pending;
    std::string owner;
    std::int64_t expires_at_ms = 0;  // past: expired, any host may claim the instance
};

// One entry of the audit log: who did what to which instance.
struct AuditRecord {
    std::int64_t at_ms = 0;
    std::string actor, action;              // actor: the client's process; action: schedule, raise_event, ...
    std::optional<std::string> instance_id;
    std::optional<std::string> detail;
};

// Why Client::watch returned.
enum class WatchEnd {
    Finished,  // the instance finished; its last event was delivered
    Stopped,   // on_event returned false
    TimedOut,  // the timeout passed with the instance still unfinished
};

// What an asynchronous call hands its callback: the value, or the error the blocking form
// would have thrown (exactly one of the two is set).
template <class T>
using AsyncHandler = std::function<void(std::optional<T> value, std::exception_ptr error)>;

class Client {
public:
    explicit Client(Database db);

    // Schedules orchestration `name` with `input`; returns the instance id. Throws
    // InvalidInput for an empty or non-UTF-8 id or name, an oversized input, or a name unknown
    // to the attached host's registry; InstanceExists as options.if_exists says.
    std::string schedule(const std::string& name, const Json& input = Json(), const ScheduleOptions& options = {});
    // As schedule(), and says whether the instance was created, found or replaced.
    ScheduleResult schedule_with_result(const std::string& name, const Json& input = Json(),
                                        const ScheduleOptions& options = {});
    // The instance's state, or nullopt if there is no such instance.
    std::optional<InstanceState> get_status(const std::string& id) const;
    // Blocks until the instance is Completed, Failed or Terminated, and returns its state.
    // Throws InstanceNotFound, or Timeout after `timeout`.
    InstanceState wait_for_completion(const std::string& id,
                                      std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;
    // As wait_for_completion, without a thread: returns at once and calls `done` once, with
    // the final state, or with InstanceNotFound / Timeout / StoreError. `done` runs on the
    // process's one waiting thread (woken by the finishing commit of a host in this process;
    // another process's commit is seen by looking again, at most 500 ms apart), so it must be
    // quick and must not block; it may call the client's asynchronous methods. When the
    // database handle closes first, `done` gets a StoreError.
    void on_completion(const std::string& id, AsyncHandler<InstanceState> done,
                       std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;
    // on_completion as a future.
    std::future<InstanceState> wait_for_completion_async(const std::string& id,
                                                         std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;
    // As schedule_with_result, without waiting for the create to be durable: returns at once
    // and calls `done` once it is (on the store's commit thread: be quick, do not block; the
    // client's asynchronous methods may be called). Invalid arguments throw here, as
    // schedule() throws them; what the store answers goes to `done`.
    void schedule_async(const std::string& name, const Json& input, const ScheduleOptions& options,
                        AsyncHandler<ScheduleResult> done);
    // Blocks until the instance has started (it is no longer Pending) and returns its state.
    // Woken by the commits of a host in this process. Throws InstanceNotFound, or Timeout
    // after `timeout`.
    InstanceState wait_for_start(const std::string& id,
                                 std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;
    // Delivers event `event_name` with `payload`. Throws InstanceNotFound, or InvalidInput
    // when the instance has finished.
    void raise_event(const std::string& id, const std::string& event_name, const Json& payload = Json());
    // As raise_event, without waiting for the event to be durable: returns at once (invalid
    // arguments throw here) and calls `done` once it is, with nullptr, or with the error
    // raise_event would have thrown (InstanceNotFound, InvalidInput, StoreError). `done` runs
    // on the store's commit thread: be quick, do not block. Many raised at once share commits.
    void raise_event_async(const std::string& id, const std::string& event_name, const Json& payload,
                           std::function<void(std::exception_ptr error)> done);
    // Ends the instance as Terminated; with `recursive`, its running sub-orchestrations too.
    void terminate(const std::string& id, const std::string& reason = {}, bool recursive = true);
    // Pauses the instance; events wait in its inbox until resume().
    void suspend(const std::string& id, const std::string& reason = {});
    void resume(const std::string& id, const std::string& reason = {});
    // Puts a Failed instance back to Running from its failure point: the result of the
    // activity or sub-orchestration whose failure failed it is left out of its replay and that
    // task runs again (a failed sub-orchestration is rewound too); everything that succeeded
    // before is kept, not run again. History keeps everything and records the rewind (an
    // ExecutionRewound event with `reason`). A host that runs the instance's version picks it
    // up. Throws InstanceNotFound, or InvalidInput when the instance is not Failed.
    void rewind(const std::string& id, const std::string& reason = {});
    // Starts the instance's orchestration again: a new instance with the same name, version
    // and input (under the same id, replacing the finished one, or a new id); returns its id.
    // Throws InstanceNotFound, or InstanceExists when it keeps the id of a running instance.
    std::string restart(const std::string& id, const RestartOptions& options = {});
    // Deletes a finished instance and its history; false if there was none. Throws
    // InvalidInput for an instance still running.
    bool purge(const std::string& id);
    // Deletes finished instances with the given statuses (default: all final ones) that
    // finished before `completed_before`; returns how many.
    std::int64_t purge(const std::vector<Status>& statuses,
                       std::optional<std::chrono::system_clock::time_point> completed_before);
    // Instances matching `filter`, ordered by id (creation order for generated ids).
    Page query(const QueryFilter& filter, std::size_t page_size = 100,
               const std::optional<std::string>& after = std::nullopt) const;
    // How many instances there are in each status, every status listed (zeros included).
    std::vector<std::pair<Status, std::int64_t>> count_by_status() const;
    // The instance's history (its current execution's, after continue_as_new) from
    // `from_seq`, at most `limit` events (-1: all). Throws InstanceNotFound.
    std::vector<HistoryEntry> history(const std::string& id, std::int64_t from_seq = 0, int limit = -1) const;
    // Calls `on_event` for each history event from `from_seq` as it is committed, until it
    // returns false, the instance finishes (after its last event) or `timeout` passes; says
    // which. Throws InstanceNotFound.
    WatchEnd watch(const std::string& id, const std::function<bool(const HistoryEntry&)>& on_event,
                   std::int64_t from_seq = 0, std::chrono::milliseconds timeout = std::chrono::minutes(5)) const;

    // Appends `record` to the audit log; it becomes durable with the next commit of this
    // process (the call does not wait for it).
    void audit(AuditRecord record) const;
    // The hosts that have used the database, by id (read-only).
    std::vector<HostInfo> hosts() const;
    // The instance leases held now, expired ones included until another host claims them.
    std::vector<LeaseInfo> leases() const;
    // The audit log, newest first: at most `limit` entries, only those about `instance_id`
    // when it is given.
    std::vector<AuditRecord> audit_log(const std::optional<std::string>& instance_id = std::nullopt,
                                       int limit = 100) const;

    // ---- schedules (durable/schedule.hpp) ----
    // Stores a schedule; its first tick is the first cron time after now. Creating one that
    // exists with the same definition returns it (an idempotent retry). Throws InvalidInput
    // for an empty id or orchestration, a malformed cron expression (the message names the
    // field), a negative window or jitter, an oversized input, or an id that exists with a
    // different definition (delete it first).
    ScheduleInfo create_schedule(const ScheduleSpec& spec);
    // The schedule, or nullopt if there is none.
    std::optional<ScheduleInfo> get_schedule(const std::string& id) const;
    // Every schedule, by id.
    std::vector<ScheduleInfo> list_schedules() const;
    // Stops firing ticks (ticks that pass while paused are neither fired nor counted);
    // `reason` is kept as its note. Throws ScheduleNotFound.
    ScheduleInfo pause_schedule(const std::string& id, const std::string& reason = {});
    // Fires again from the first cron time after now. Throws ScheduleNotFound.
    ScheduleInfo resume_schedule(const std::string& id);
    // Starts an instance of the schedule now, paused or not and whatever the overlap policy
    // (an operator's "run it now"); it becomes the schedule's last instance. Returns its id,
    // `<schedule id>@trigger-<uuid>`. Throws ScheduleNotFound.
    std::string trigger_schedule(const std::string& id);
    // Deletes the schedule (the instances it started stay); false if there was none.
    bool delete_schedule(const std::string& id);

private:
    friend class Host;  // Host::client() attaches its clients
    Database db_;
    std::shared_ptr<detail::ClientAttachment> attachment_;
    // Live hosts' newest versions per name, looked up at most once a second (client.cpp).
    std::shared_ptr<detail::VersionCache> versions_;
};

// A new time-ordered instance id (UUIDv7).
std::string new_instance_id();

}  // namespace durable
