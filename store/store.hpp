// store/store.hpp — the storage interface the runtime depends on.
//
// The store is the only part of durable that speaks SQL. It knows instances, their history,
// inboxes, activity tasks, leases, hosts and the audit log; it knows nothing of coroutines.
// Events are opaque JSON text to it.
//
// Invariants every implementation keeps:
//  - One episode, one transaction: an EpisodeCommit's history rows, consumed inbox rows,
//    new messages / instances / tasks and the instance update become visible together or
//    not at all.
//  - The lease CAS: an episode commits only if the instance's `version` still equals the
//    version the committing host holds and `lease_owner` is that host; it bumps `version`.
//    A commit that touches no row is a conflict (the host lost the instance), reported as a
//    value, never applied in part.
//  - Lease renewal extends `lease_expires_at` only; it never changes `version`, so it can
//    never make the owner's own in-flight commit fail.
//
// Writes are group-committed: each write method enqueues the work and returns at once; the
// callback runs (on the store's commit thread) only after the transaction that carried it is
// durable, or failed. On a thread inside a LeaderCommits scope a store may instead commit the
// write on the calling thread when nothing else is committing (the SQLite store does); then
// the call returns after the commit, its callback having run on the calling thread. Callbacks
// must be quick and must not call back into the store synchronously. Reads are synchronous
// and may be called from any thread.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "durable/status.hpp"

namespace durable::store {

using Millis = std::int64_t;

// The one name find_claimable's `names` may hold to mean every orchestration name.
inline constexpr std::string_view kAnyName = "*";

using durable::Status;
using durable::to_string;
using durable::status_from_string;
using durable::is_terminal;

struct InstanceRow {
    std::string id;
    std::string name;
    Status status = Status::Pending;
    std::string execution_id;
    std::optional<std::string> input, output, error, custom_status;
    std::optional<std::string> parent_id;
    std::int64_t parent_task_id = -1;
    Millis created_at = 0, updated_at = 0;
    std::optional<Millis> completed_at;
    std::int64_t version = 0;
    std::optional<std::string> lease_owner;
    Millis lease_expires_at = 0;
    std::int64_t recoveries = 0;  // takeovers in a row without progress
    std::optional<std::string> trace_parent;  // W3C traceparent the instance's spans hang under
    // The version of its orchestration's code the instance runs ("" unversioned); nullopt
    // until a host first runs it (that host records the newest version it registers).
    std::optional<std::string> orchestration_version;
};

// One history event (the store may keep the events of one commit in one row; reads give
// them one by one).
struct HistoryRow {
    std::int64_t seq = 0;
    std::string event;  // JSON text
};

struct InboxRow {
    std::int64_t id = 0;
    std::string instance_id;
    Millis visible_at = 0;
    bool control = false;
    std::string event;  // JSON text
};

// Where a host's last owned_inbox_since read left off. A store that can say which inbox rows
// are new since a read (SQLite: ids grow in commit order, one writer at a time) fills it in;
// one that cannot leaves it invalid, and every read is a whole owned_inbox read.
struct InboxCursor {
    std::int64_t after_id = 0;  // every row with an id up to this, visible by visible_after, was read
    Millis visible_after = 0;
    bool valid = false;         // false: read everything
};

// An instance to create. Creation is idempotent on `id`: an existing id is left alone, unless
// `replace_finished` and it has finished (Completed, Failed, Terminated): then it is deleted
// with its history, inbox and tasks, and created anew, in the same transaction.
struct NewInstance {
    std::string id, name, execution_id;
    std::optional<std::string> input;
    std::optional<std::string> parent_id;
    std::int64_t parent_task_id = -1;
    Millis now = 0;
    std::string start_event;   // inbox event that starts it
    Millis start_at = 0;       // when the start event becomes visible
    // When set, the instance is created already leased to this host (saves a claim).
    std::optional<std::string> lease_owner;
    Millis lease_expires_at = 0;
    std::string actor;         // for the audit log; empty: no audit entry
    std::optional<std::string> trace_parent;  // W3C traceparent of the creating call
    bool replace_finished = false;
    std::optional<std::string> orchestration_version;  // nullopt: the first host to run it decides
};

struct NewMessage {
    std::string instance_id;
    Millis visible_at = 0;
    bool control = false;
    std::string event;
};

// Activity work any host that knows `name` may take.
struct NewTask {
    std::string instance_id, execution_id, name;
    std::int64_t task_id = 0;
    std::optional<std::string> input;
    Millis visible_at = 0;
    // W3C traceparent of the instance's orchestration span, whose sampled flag is the trace's
    // sampling decision: the host that claims the row puts the activity in that trace.
    std::optional<std::string> trace_parent;
};

struct AuditEntry {
    Millis at = 0;
    std::string actor, action;
    std::optional<std::string> instance_id;
    std::optional<std::string> detail;
};

// Everything one orchestration episode decided, committed atomically under the lease CAS.
// A new field needs its merge rule in runtime/episode_commit.cpp (merge_pending), which does
// not compile until it has one.
struct EpisodeCommit {
    std::string instance_id;
    std::string owner;
    std::int64_t expected_version = 0;
    Millis now = 0;
    bool reset_history = false;           // continue-as-new: the old generation's history goes
    std::int64_t first_seq = 0;           // seq of events[0]
    std::vector<std::string> events;      // history to append
    std::vector<std::int64_t> consumed_inbox;
    std::vector<NewMessage> messages;     // timers, events to other instances, completions
    std::vector<NewInstance> new_instances;  // sub-orchestrations
    std::vector<NewTask> tasks;
    std::vector<std::int64_t> completed_task_rows;  // none today; kept for remote completions
    // The instance row after the episode.
    Status status = Status::Running;
    bool progressed = true;                // history grew: resets the recovery count
    std::string execution_id;
    std::optional<std::string> input, output, error, custom_status;
    bool release_lease = false;            // on completion / idle eviction
    Millis lease_expires_at = 0;           // when not releasing: keep/extend to this
    std::vector<AuditEntry> audit;
    // Records the version the instance runs, if it has none yet (its first episode).
    std::optional<std::string> orchestration_version;
};

// What a write achieved. `error` is set when the transaction failed (the write had no
// effect); `conflict` when a CAS found the row changed (no effect either).
struct WriteResult {
    bool ok = false;
    std::int64_t inbox_id = 0;             // create_instance: the start event's inbox row
    bool conflict = false;
    std::exception_ptr error;
    std::int64_t new_version = 0;
    std::int64_t count = 0;                // rows affected where that is the answer
    std::vector<std::string> ids;          // ids where that is the answer
    std::vector<std::int64_t> rows;        // renew_leases: activity task rows still held
};
using WriteCallback = std::function<void(const WriteResult&)>;

// Work a commit makes for other hosts to pick up (Store::subscribe_work), as bits.
enum WorkKind : unsigned {
    kWorkTasks = 1u << 0,      // activity tasks became claimable (inserted or released)
    kWorkInbox = 1u << 1,      // inbox rows were written (results, messages, timers, starts)
    kWorkInstances = 1u << 2,  // instances became claimable (created unleased, released)
};

struct Candidate {
    std::string id;
    std::int64_t version = 0;
    bool orphaned = false;  // a host left it behind with its lease expired
};

struct ClaimedTask {
    std::int64_t row_id = 0;
    std::string instance_id, execution_id, name;
    std::int64_t task_id = 0;
    std::optional<std::string> input;
    std::int64_t attempt = 0;
    std::optional<std::string> heartbeat_details;  // the last heartbeat's details (JSON), from an earlier worker
    std::optional<std::string> trace_parent;       // NewTask::trace_parent
};

// An activity's result for complete_and_claim_tasks: its task row and the inbox event.
struct TaskCompletion {
    std::int64_t row_id = 0;
    NewMessage completion;
};

struct HostRow {
    std::string id, hostname;
    std::int64_t pid = 0;
    Millis started_at = 0, heartbeat_at = 0;
    std::optional<Millis> stopped_at;
    std::int64_t leases = 0;  // read only: instance leases it holds
    // The names the host registers (it claims only instances and tasks of these), and its
    // lease duration (live: a heartbeat within two leases and not stopped).
    std::vector<std::string> orchestrations, activities;
    Millis lease_ms = 10'000;
    // Per orchestration name, the versions the host registers ("" unversioned).
    std::map<std::string, std::vector<std::string>> orchestration_versions;
};

// One orchestration code a host runs: a name and one registered version of it ("" for an
// unversioned registration). A host claims an instance only if it runs the instance's name
// and recorded version (or the instance has no version yet).
struct OrchestrationCode {
    OrchestrationCode(std::string n, std::string v = {}) : name(std::move(n)), version(std::move(v)) {}
    OrchestrationCode(const char* n) : name(n) {}  // unversioned; lets {"name"} lists convert
    std::string name, version;
};

// Puts a Failed instance back to work (Client::rewind): `messages` go to its inbox (the
// rewind marker first), the instance becomes Running with its output, error and completion
// time cleared and no lease, so that a host that runs its code claims it. Applied only if
// the instance is still Failed with `next_seq` as its next history seq.
struct Rewind {
    std::string instance_id;
    std::int64_t next_seq = 0;
    std::vector<NewMessage> messages;
    Millis now = 0;
    std::optional<AuditEntry> audit;
};

struct InstanceFilter {
    std::vector<Status> statuses;
    std::optional<std::string> name;
    std::optional<std::string> parent_id;
    std::optional<Millis> created_from, created_to;  // [from, to)
    std::optional<std::string> after_id;              // keyset paging: ids past after_id (in the order below)
    std::optional<std::string> id_prefix;             // only ids starting with it (a range of the primary key)
    bool newest_first = false;                        // ORDER BY id DESC (after_id then means ids < after_id)
    int limit = 100;
};

struct PurgeFilter {
    std::vector<Status> statuses;   // only terminal statuses are purged in any case
    std::optional<Millis> completed_before;
};

// What a store is, for benchmark lines and logs.
struct StoreInfo {
    std::string kind;        // "sqlite", "postgresql"
    std::string version;     // the SQLite library's, or the server's
    std::string durability;  // "synchronous=full", "synchronous_commit=on", ...
};

// One row of the change feed: a committed episode that appended history events
// [first_seq, first_seq + count) to `instance_id`.
struct ChangeRow {
    std::int64_t seq = 0;  // global, increasing, without holes
    Millis at = 0;
    std::string instance_id, name;
    Status status = Status::Running;
    std::int64_t first_seq = 0, count = 0;
};

// A recurring schedule (cron) that starts instances of one orchestration. The runtime
// decides what each tick does; the store keeps the row and applies a step atomically.
struct ScheduleRow {
    std::string id, cron, orchestration;
    std::optional<std::string> input;        // JSON text
    std::string overlap = "skip";            // skip, buffer_one, allow_all
    Millis catchup_window_ms = 0, jitter_ms = 0;
    bool paused = false;
    std::optional<std::string> note;         // why it was paused
    std::optional<Millis> next_fire;         // the next tick not yet handled (none: it never fires again)
    std::optional<Millis> last_fire;         // the last tick handled
    std::optional<std::string> last_instance_id;  // the instance it started last
    std::optional<Millis> buffered_tick;     // buffer_one: a tick waiting for last_instance_id to finish
    std::int64_t fired = 0;                  // instances started (ticks and triggers)
    std::int64_t missed = 0;                 // ticks older than the catch-up window, skipped
    std::int64_t skipped = 0;                // ticks skipped by the overlap policy
    std::int64_t version = 0;                // bumped by every update (the CAS token)
    Millis created_at = 0, updated_at = 0;
};

// One step of a schedule, applied in one transaction under a CAS on its version: the row's
// new state (`row.version` is the version the step was computed from) and the instances its
// ticks start, each created only if its id is free (a tick's id derives from its time, so a
// tick cannot start twice).
struct ScheduleUpdate {
    ScheduleRow row;
    std::vector<NewInstance> instances;
    std::vector<AuditEntry> audit;
};

struct StoreStats {
    std::int64_t commits = 0, ops = 0, busy_wait_us = 0, wal_pages = 0, checkpoints = 0;
    std::int64_t checkpoint_us = 0;  // time spent in checkpoints
    std::int64_t wal_bytes = 0;      // wal_pages times the page size
};

class Store {
public:
    virtual ~Store() = default;

    // ---- writes (group-committed; the callback runs after durability) ----
    // ids = {id} if created; count = 1 if it replaced a finished instance (replace_finished).
    virtual void create_instance(NewInstance inst, WriteCallback cb) = 0;
    // Messages to existing, non-terminal instances. conflict=true when the instance is missing
    // or finished (nothing written).
    virtual void send_message(NewMessage msg, std::optional<AuditEntry> audit, WriteCallback cb) = 0;
    virtual void commit_episode(EpisodeCommit commit, WriteCallback cb) = 0;
    // Claims each candidate whose version still matches and whose lease is free or expired.
    // ids = the claimed ones; their new version is candidate.version + 1.
    virtual void claim_instances(std::vector<Candidate> candidates, std::string owner, Millis now,
                                 Millis lease_until, WriteCallback cb) = 0;
    // Extends every unexpired lease `owner` holds (instances and tasks) to `lease_until`.
    // ids = instance ids still held, rows = activity task rows still held. Never changes `version`.
    // Task leases are kept in the store's clock (see claim_tasks): for them `now` and
    // `lease_until` give the lease duration only.
    virtual void renew_leases(std::string owner, Millis now, Millis lease_until, WriteCallback cb) = 0;
    // Gives leases up. With `orphan`, the owner stays set and the lease expires now, so any
    // host recovers the instance at once (work was in flight); otherwise it is freed.
    virtual void release_leases(std::string owner, std::vector<std::string> ids, bool orphan,
                                WriteCallback cb) = 0;
    // Inserts or updates the host's row (all fields but `leases` and `started_at` once set).
    virtual void heartbeat(HostRow host, WriteCallback cb) = 0;
    // Claims up to `limit` visible activity tasks of `names` whose lease is free or expired,
    // leasing them to `owner` for `lease_ms` and counting the attempt. Task lease times are
    // read, compared and set in the store's clock (Store::now(): the database server's for
    // PostgreSQL), never a host's, so hosts with skewed clocks agree on who holds a task.
    virtual void claim_tasks(std::vector<std::string> names, std::string owner, Millis lease_ms, int limit,
                             std::function<void(std::vector<ClaimedTask>, std::exception_ptr)> cb) = 0;
    // Deletes the task row (if still leased by owner) and delivers `completion` to the inbox,
    // in one transaction. conflict=true (nothing written) when the row is gone or leased to
    // another host.
    virtual void complete_task(std::int64_t row_id, std::string owner, NewMessage completion,
                               WriteCallback cb) = 0;
    // Completes each of `done` as complete_task does (delivered only while `owner` holds its
    // row), then claims up to `limit` tasks of `names` as claim_tasks does: one transaction
    // where the store can (SQLite), so a worker's results and its next claim cost one commit.
    // The callback gets rows = the rows whose result was delivered (the others were gone,
    // taken over, or failed with `error`), and the tasks now claimed.
    virtual void complete_and_claim_tasks(std::string owner, std::vector<TaskCompletion> done,
                                          std::vector<std::string> names, Millis lease_ms, int limit,
                                          std::function<void(const WriteResult&, std::vector<ClaimedTask>)> cb);
    // Frees the leases `owner` holds on these task rows (claimable at once by any host).
    virtual void release_tasks(std::string owner, std::vector<std::int64_t> rows, WriteCallback cb) = 0;
    // An activity's heartbeat: extends the task row's lease to `lease_ms` from now (the store's
    // clock) and stores
    // `details` (JSON text) if `owner` still holds it; conflict=true when the row is gone (the
    // instance finished or was terminated) or leased to another host (the activity should stop).
    virtual void heartbeat_task(std::int64_t row_id, std::string owner, Millis lease_ms,
                                std::optional<std::string> details, WriteCallback cb) = 0;
    virtual void purge_instance(std::string id, WriteCallback cb) = 0;  // count = instances purged
    virtual void purge_instances(PurgeFilter filter, Millis now, WriteCallback cb) = 0;
    virtual void append_audit(AuditEntry entry, WriteCallback cb) = 0;
    // Applies the rewinds (an instance and its failed sub-orchestrations) in one transaction,
    // all or none: conflict=true (nothing written) when one of them is not Failed any more or
    // its history has moved on. count = instances rewound.
    virtual void rewind_instances(std::vector<Rewind> rewinds, WriteCallback cb) = 0;

    // ---- schedules ----
    // Inserts the schedule; conflict=true (nothing written) when the id exists.
    virtual void create_schedule(ScheduleRow row, std::optional<AuditEntry> audit, WriteCallback cb) = 0;
    // Applies `update` if the schedule's version is still update.row.version (it becomes
    // version + 1): the row, then the instances (ids = those created), then the audit entries.
    // conflict=true (nothing written) when the version moved or the schedule is gone.
    virtual void update_schedule(ScheduleUpdate update, WriteCallback cb) = 0;
    // Deletes the schedule (its instances stay); count = 1 if there was one.
    virtual void delete_schedule(std::string id, std::optional<AuditEntry> audit, WriteCallback cb) = 0;

    // Blocks until every write submitted before the call is durable.
    virtual void flush() = 0;

    // ---- wake-ups across processes ----
    // Calls `on_work` soon after another process commits work of a kind in `kinds` (bits of
    // WorkKind), on a thread of the store's: keep it short, never call the store from it.
    // nullopt: this store cannot tell (the PostgreSQL store today); the caller polls.
    // A subscriber polls slowly as well: a wake-up can be lost (a writer that died).
    virtual std::optional<std::uint64_t> subscribe_work(unsigned kinds, std::function<void()> on_work) {
        (void)kinds;
        (void)on_work;
        return std::nullopt;
    }
    // After it returns, the subscriber's callback is not running and is never called again.
    virtual void unsubscribe_work(std::uint64_t id) { (void)id; }

    // ---- reads ----
    virtual std::optional<InstanceRow> get_instance(const std::string& id) = 0;
    virtual std::vector<HistoryRow> get_history(const std::string& id, std::int64_t from_seq = 0,
                                                int limit = -1) = 0;
    virtual std::vector<InboxRow> get_inbox(const std::string& id, Millis now) = 0;
    // What a host reads to run instances it has just claimed: each one's row, its current
    // execution's history and its inbox visible at `now`, as the three reads above would
    // give them, in `ids` order; ids with no row are left out. This default reads one
    // instance after another; a store with round trips to a server loads them together.
    struct Loaded {
        InstanceRow row;
        std::vector<HistoryRow> history;
        std::vector<InboxRow> inbox;
    };
    virtual std::vector<Loaded> load_instances(const std::vector<std::string>& ids, Millis now) {
        std::vector<Loaded> out;
        for (const auto& id : ids) {
            auto row = get_instance(id);
            if (!row) continue;
            out.push_back(Loaded{std::move(*row), get_history(id), get_inbox(id, now)});
        }
        return out;
    }
    virtual std::vector<InstanceRow> query_instances(const InstanceFilter& filter) = 0;
    // How many instances there are in each status (statuses with none are left out).
    virtual std::vector<std::pair<Status, std::int64_t>> count_by_status() = 0;
    // Instances of the orchestrations `code` with visible inbox work whose lease is free or
    // expired, and such instances whose owner left them behind (lease expired with owner set).
    // Instances of other names or recorded versions are not candidates (this host cannot run
    // them); instances without a version yet are, for any version of their name.
    // `code` == {kAnyName, then the host's own code}: instances of every name (a host with
    // remote code), except that a name listed after kAnyName is claimed only in its listed
    // versions (or without a version yet).
    virtual std::vector<Candidate> find_claimable(const std::string& owner, const std::vector<OrchestrationCode>& code,
                                                  Millis now, int limit) = 0;
    // Of `names`, those with at least one visible activity task whose lease is free or expired
    // in the store's clock (a read, so that a host finds out cheaply whether claim_tasks would
    // get anything).
    virtual std::vector<std::string> claimable_task_names(const std::vector<std::string>& names) = 0;
    // Visible inbox rows of instances `owner` holds.
    virtual std::vector<InboxRow> owned_inbox(const std::string& owner, Millis now, int limit) = 0;
    // Like owned_inbox, but only rows that may be new since `cursor`: a larger id, or visible
    // after cursor.visible_after (a timer come due); then moves `cursor` past what it read. A
    // caller that skips a returned row, or must see a row again, moves cursor.after_id back
    // below that row's id. The default reads everything and leaves the cursor invalid.
    virtual std::vector<InboxRow> owned_inbox_since(const std::string& owner, Millis now, int limit,
                                                    InboxCursor& cursor);
    // Earliest future visible_at in any inbox, if any (when to look for due timers next).
    virtual std::optional<Millis> next_visible_after(Millis now) = 0;
    virtual std::vector<HostRow> list_hosts() = 0;
    virtual std::vector<InstanceRow> list_leases(Millis now) = 0;
    virtual std::vector<AuditEntry> audit_log(const std::optional<std::string>& instance_id, int limit) = 0;
    // Changes whenever another connection (any process) commits; cheap change detection.
    virtual std::int64_t change_counter() = 0;
    // The change feed: rows with seq > `after_seq`, oldest first, at most `limit`. Every
    // commit_episode that appends history adds one row in its own transaction; rows are
    // pruned by age and count (a reader that finds seq jump past after_seq + 1 lost rows).
    virtual std::vector<ChangeRow> read_changes(std::int64_t after_seq, int limit) = 0;
    // The seq of the newest change-feed row (0 when none): where a live follower starts.
    virtual std::int64_t change_feed_head() = 0;
    virtual std::optional<ScheduleRow> get_schedule(const std::string& id) = 0;
    virtual std::vector<ScheduleRow> list_schedules() = 0;  // by id
    // Schedules with work at `now`, not paused: at most `limit` with a tick due (next_fire <=
    // now, the most overdue first), then at most `limit` others with a buffered tick waiting.
    virtual std::vector<ScheduleRow> due_schedules(Millis now, int limit) = 0;
    // The earliest next_fire of the schedules that are not paused (none: nothing to wait for).
    virtual std::optional<Millis> next_schedule_fire() = 0;
    // Checks, through a new connection, that the database can be opened and read now (for a
    // readiness probe: an open connection keeps working on a file deleted or made unreadable
    // under it). Throws StoreError saying what failed.
    virtual void probe() = 0;
    virtual StoreStats stats() = 0;
    virtual std::string describe() const = 0;  // for logs and benchmark lines
    // The clock lease times (and timer due times) are read from, in ms since the Unix epoch:
    // every host on one database must compare leases in one clock. SQLite: the machine's
    // (every host shares it). PostgreSQL: the server's.
    virtual Millis now();
    virtual StoreInfo info() const;
};

// While one lives on a thread, that thread's writes may be committed by the thread itself
// when the store is idle (leader commits: no commit-thread wake-up, no wake-up of a caller
// waiting for the callback). Only for a thread that waits for its writes anyway or can afford
// to block for one commit, holding no lock its own write callbacks take; never for one that must stop waiting at a deadline (the lease renewer
// fences itself on time). Scopes nest.
class LeaderCommits {
public:
    LeaderCommits();
    ~LeaderCommits();
    LeaderCommits(const LeaderCommits&) = delete;
    LeaderCommits& operator=(const LeaderCommits&) = delete;
    // True on a thread inside a scope.
    static bool active();

private:
    bool previous_;
};

enum class Synchronous { Full, Normal };

struct SqliteOptions {
    Synchronous synchronous = Synchronous::Full;
    int busy_timeout_ms = 10'000;
    int max_batch_ops = 1'000;                  // writes carried by one transaction at most
    std::int64_t checkpoint_pages = 4'000;      // passive checkpoint past this WAL size
    std::int64_t journal_size_limit = 64 << 20;
    bool read_only = false;                     // open for inspection only
    // Change feed retention: rows older than this, or beyond this many, are pruned (about
    // once a second, by the commit thread); the newest row always stays.
    std::int64_t change_feed_max_age_ms = 3'600'000;
    std::int64_t change_feed_max_rows = 100'000;
};

// Opens (creating if needed) and migrates a SQLite database. Throws durable::StoreError
// with a message naming the file and what to do when it cannot be used.
std::shared_ptr<Store> open_sqlite(const std::string& path, const SqliteOptions& options = {});

}  // namespace durable::store
