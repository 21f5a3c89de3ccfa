// runtime/host_impl.hpp — the inside of a Host, shared by its parts (host.cpp: lifecycle;
// episode.cpp: running episodes and committing them; dispatcher.cpp: claiming, loading,
// inbox delivery, timers, eviction; lease_renewer.cpp; activity_pool.cpp).
//
// Threads, each started by start() and joined by stop():
//   episode workers (HostOptions::episode_threads) run orchestrator code;
//   activity workers (HostOptions::activity_threads) run activities, and the episode an
//     activity's result makes ready when its instance is idle (a chain of activities then
//     runs on one thread: no handoff, no wake-up between steps);
//   the dispatcher finds and claims work and delivers inbox events;
//   the renewer renews leases and fences the host when renewal fails;
//   the scheduler fires due schedule ticks (runtime/scheduler.hpp; HostOptions::run_schedules);
//   the store's commit thread runs commit callbacks (on_committed).
// An instance's Execution is touched only by the episode worker that set its `running` flag,
// or by the loader before the instance is published. Everything else in LiveInstance and
// Impl is guarded by Impl::mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "durable/client.hpp"
#include "durable/event_distributor.hpp"
#include "durable/host.hpp"
#include "runtime/completion_hub.hpp"
#include "runtime/episode_commit.hpp"
#include "runtime/database_access.hpp"
#include "runtime/execution.hpp"
#include "runtime/lease_timing.hpp"
#include "runtime/scheduler.hpp"
#include "store/store.hpp"

namespace durable {

struct Incoming {
    Json event;
    std::int64_t inbox_id = -1;  // the inbox row it came from; -1 for in-memory events
};

using detail::PendingCommit;

struct LiveInstance {
    std::string id, name, execution_id;
    std::optional<std::string> parent_id;
    std::int64_t parent_task_id = -1;
    std::unique_ptr<detail::Execution> exec;  // owned by the worker that set `running`
    std::optional<PendingCommit> lingering;   // a held commit; owned by the worker that set `running`
    // Set while `lingering` is: when the dispatcher must run an episode to commit it.
    std::optional<std::chrono::steady_clock::time_point> linger_due;  // guarded by mu_
    std::int64_t version = 0;    // the version the next commit expects
    std::int64_t next_seq = 0;   // seq of the next history event
    Status status = Status::Pending;
    std::deque<Incoming> incoming;       // guarded by mu_
    std::deque<Incoming> held;           // in-memory events held while suspended; guarded by mu_
    std::vector<std::int64_t> delivered; // inbox rows handed to this instance; guarded by mu_
    bool queued = false, running = false, dead = false, needs_episode = false;
    int inflight_activities = 0;
    int pending_commits = 0;
    // Cancels this instance's activities running here (terminated, finished, lease lost);
    // made at its first activity. Guarded by mu_.
    std::optional<CancellationToken> activities_token;
    // Activities scheduled in history with no result, that this host does not run: the next
    // episode writes their task rows. Set by the loader; owned by the worker that set `running`.
    std::vector<detail::Decision> redispatch_tasks;
    // Set by the loader, owned by the worker that set `running`: the version this host
    // records for an instance that had none (its first commit writes it), and inbox rows the
    // loader applied itself (a rewind marker, replayed with history) for the next commit.
    std::optional<std::string> pin_version;
    std::vector<std::int64_t> consume_first;
    // On the host's clock (Impl::clock->steady_now()), as every lease decision.
    std::chrono::steady_clock::time_point loaded_at, last_active;
    // Remote code (remote_orchestrator.hpp): a step is out (guarded by mu_); its reply, once
    // it came (guarded by mu_); inbox rows applied by the step's episode, consumed by the
    // commit that carries the reply (owned by the worker that set `running`).
    bool step_out = false;
    std::optional<RemoteReply> reply;
    std::vector<std::int64_t> step_consumed;
};

struct ActivityWork {
    std::string instance_id, execution_id, name;
    std::int64_t task_id = 0;
    Json input;
    std::int64_t row_id = -1;  // a claimed activity_tasks row; -1 for in-memory work
    int attempt = 1;
    std::string correlation_id;
    // The in-memory instance that dispatched it. After a drop and a reload on this host the
    // reloaded instance dispatches the task again; a result of the old run must not reach it
    // as well (history would get the completion twice).
    std::weak_ptr<LiveInstance> owner;
    std::optional<CancellationToken> token;  // the instance's (in-memory work) or the task's (row)
    Json last_details;                       // a claimed task's last heartbeat details
    std::string trace_parent;  // the instance's persisted traceparent, or a task row's (may be empty)
    bool sampled = true;       // its spans are recorded (the trace's decision, carried with it)
};

// One in-process attempt of an activity, for its spans.
struct AttemptRecord {
    std::chrono::steady_clock::time_point start, end;
    std::string error_type, error_message;  // empty: it succeeded
};

// What ties a Client to the Host that made it (Host::client()).
struct detail::ClientAttachment {
    std::weak_ptr<Host::Impl> host;
};

struct Host::Impl : std::enable_shared_from_this<Host::Impl> {
    Impl(Database db, std::shared_ptr<const Registry> registry, HostOptions options);

    // ---- lifecycle (host.cpp) ----
    void start();
    void stop(bool graceful);

    // ---- episodes (episode.cpp) ----
    void episode_worker();
    // Runs one episode of `inst` (not running, not dead) on the calling thread; `lock` holds
    // mu_ on entry and on return.
    void run_instance_locked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<LiveInstance>& inst);
    void run_episode(const std::shared_ptr<LiveInstance>& inst, std::deque<Incoming> events);
    // The episode of an instance whose code is remote (remote_episode.cpp): applies the reply
    // to its step, if one came, and the events; commits; sends the next step.
    void run_remote_episode(const std::shared_ptr<LiveInstance>& inst, std::deque<Incoming> events);
    // What the commit needs of `inst` after an episode of `ex` (C++ and remote episodes alike).
    detail::EpisodeOutcome episode_outcome(const LiveInstance& inst, const detail::Execution& ex, store::Millis now, Status status,
                                           bool terminal, bool reset_history, std::optional<std::string> new_input,
                                           const std::vector<Json>& history, const std::vector<std::int64_t>& consumed);
    // Whether `inst` may run an episode now: not while its step is out, unless a reply came
    // or a control event (terminate, suspend, resume) waits. Guarded by mu_.
    bool remote_blocked_locked(const LiveInstance& inst) const;
    // Sends the step `exec` says is due, unless one is out. Called without mu_.
    void send_remote_step(const std::shared_ptr<LiveInstance>& inst);
    // The code find_claimable looks for: every name and version while remote code is connected.
    std::vector<store::OrchestrationCode> claim_names() const;
    void on_committed(const std::shared_ptr<LiveInstance>& inst, const store::WriteResult& r,
                      std::vector<std::int64_t> consumed, bool terminal, Status status,
                      std::vector<std::string> adopt);
    void enqueue_locked(const std::shared_ptr<LiveInstance>& inst);
    // Commit handling, on the thread running the instance (owner of inst->lingering).
    // `lingered`: p is (or holds) the instance's lingering commit, whose due time goes with it.
    void submit_commit(const std::shared_ptr<LiveInstance>& inst, PendingCommit p, bool lingered);
    void flush_lingering(const std::shared_ptr<LiveInstance>& inst);
    // Dispatcher: asks for an episode of each instance whose lingering commit is due; returns
    // the earliest time the next one will be.
    std::optional<std::chrono::steady_clock::time_point> due_lingering_locked(std::chrono::steady_clock::time_point now);
    void drop_locked(const std::shared_ptr<LiveInstance>& inst, const char* why);

    // ---- dispatcher (dispatcher.cpp) ----
    void dispatcher_loop();
    bool poll_once();
    // `preloaded`: its rows, read by Store::load_instances after forget_consumed_inbox().
    void load_instance(const std::string& id, bool orphaned, store::Store::Loaded* preloaded = nullptr);
    void forget_consumed_inbox();
    std::size_t deliver_owned_inbox(std::int64_t now);  // returns how many events it delivered
    // An inbox row this host must read again (it gave it back undelivered, or skipped it):
    // the dispatcher's next inbox read starts at or before it.
    void reread_inbox_locked(std::int64_t row);
    // Under mu_, after an episode applied its events (C++ and remote code alike): inbox rows it
    // left (suspended) are read again later, in-memory events it held wait in `held`, and
    // with `release_held` everything held goes back to `incoming`.
    void keep_unapplied_locked(LiveInstance& inst, const std::vector<std::int64_t>& undeliver,
                               std::deque<Incoming>& hold, bool release_held);
    // Continue-as-new: swaps in the instance's next generation (a fresh execution id, its
    // ExecutionStarted with the input, then the carried events and `after_continue`, which is
    // emptied) and returns that input. The old generation's frames go.
    Json start_next_generation(LiveInstance& inst, std::vector<Json>& after_continue, store::Millis now);
    // Under mu_, as an episode's commit is submitted: its sequence numbers and version step
    // (`merging`: it joins the lingering commit, whose CAS it takes), the instance's status,
    // the timers and activities it runs here; a terminal episode cancels what still runs.
    void note_commit_locked(const std::shared_ptr<LiveInstance>& inst, store::EpisodeCommit& c, bool reset_history,
                            bool merging, Status new_status, const detail::EpisodeLocalWork& local, bool terminal);
    void evict_idle();
    // An instance the attached client has just created leased to this host (its create is
    // durable): put in memory as it is, and started.
    void adopt_created(const store::NewInstance& created, std::int64_t inbox_id, Json start_event);
    void wake_dispatcher();

    // ---- leases (lease_renewer.cpp) ----
    void renewer_loop();
    void fence(const char* why);

    // ---- activities (activity_pool.cpp) ----
    void activity_worker();
    void dispatch_activities_locked(const std::shared_ptr<LiveInstance>& inst,
                                    const std::vector<detail::Decision>& decisions);
    // On an episode worker, after its episode: runs the single activity that episode decided
    // while the host was otherwise idle (no wake-up of an activity worker on the latency path),
    // then the instance's next episode, as an activity worker would. `lock` holds mu_.
    void run_inline_activities_locked(std::unique_lock<std::mutex>& lock);
    void mark_episode_worker();  // the calling thread is an episode worker
    // A task row's activity has ended here: its slot is free for the next claim.
    void finish_task_locked(const ActivityWork& work);
    // Runs the activity and hands its result to the instance. Returns the instance when the
    // calling thread should run its next episode itself (it is idle: nobody else would).
    std::shared_ptr<LiveInstance> run_activity(ActivityWork& work);
    Json complete_activity_event(const ActivityWork& work, const Json& result, std::exception_ptr error);
    // Dispatcher: claims activity tasks this host registers, as many as it has room for.
    // Returns how many it claimed.
    std::size_t claim_tasks_once();  // their leases run on the store's clock (Store::claim_tasks)
    // An activity run from a task row heartbeats: extends the row's lease (spaced out).
    // `last`: when this run's last heartbeat was written (none yet: the first one is).
    bool heartbeat_task(ActivityWork& work, const Json& details,
                        std::optional<std::chrono::steady_clock::time_point>& last);
    // True when this host runs `name` itself under the instance lease (no task row).
    // A registry's default activity (a `durable serve` host's connected workers) runs every
    // name that is not registered by name.
    bool runs_activity_directly(const std::string& name) const {
        if (direct_activities.count(name) > 0) return true;
        return registry->has_default_activity() && max_concurrent.count(name) == 0;
    }
    bool runs_orchestration(const std::string& name) const {
        return registry->orchestrator(name) != nullptr || registry->default_orchestrator() != nullptr;
    }
    // This host's row in the hosts table (names, lease), for its heartbeats.
    store::HostRow host_row(store::Millis now, std::optional<store::Millis> stopped) const;

    // ---- tracing and per-activity counters (host_tracing.cpp) ----
    // Spans of one episode (and of the orchestration, when the execution `ended`).
    void trace_episode(const detail::ExecutionInfo& info, std::chrono::nanoseconds took, Status status, bool ended,
                       const std::string& error);
    void trace_activity(const ActivityWork& work, std::chrono::nanoseconds took,
                        const std::vector<AttemptRecord>& attempts, std::exception_ptr error);
    void count_attempt_failure(const std::string& activity, const std::string& error_type);
    void count_activity_failure(const std::string& activity, const std::string& error_type);
    static std::string error_type_of(const std::exception_ptr& error);

    store::Millis now_ms() const { return clock->now_ms(); }
    std::int64_t lease_ms() const { return options.lease_duration.count(); }

    Database db;
    std::shared_ptr<store::Store> store;
    std::shared_ptr<detail::CompletionHub> hub;
    std::shared_ptr<const Registry> registry;
    HostOptions options;
    std::shared_ptr<Clock> clock;
    detail::LeaseTiming lease_timing;  // fencing and renewal times, on clock->steady_now()
    std::shared_ptr<spdlog::logger> log;
    std::string id;
    detail::ExecutionLimits limits;
    PolicyRegistry policies;
    Metrics metrics;
    CancellationToken stop_token;
    std::vector<std::string> local_activity_names;   // every activity this host registers
    std::vector<std::string> orchestration_names;     // every orchestration this host registers
    std::vector<store::OrchestrationCode> orchestration_code;  // every (name, version) it registers
    std::unordered_set<std::string> direct_activities;  // registered and unlimited: run under the instance lease
    std::unordered_map<std::string, int> max_concurrent;  // registered with a limit
    detail::LocalCode local_code;                      // for the episode-commit builder

    // metrics
    Counter &m_episodes, &m_activities, &m_activity_failures, &m_completed, &m_failed, &m_claims, &m_takeovers,
        &m_conflicts, &m_renewals, &m_renewal_failures, &m_replays, &m_fences, &m_started, &m_task_claims,
        &m_task_completions;
    Histogram &h_episode, &h_commit, &h_activity;
    Gauge &g_cached, &g_active, &g_wal_pages, &g_busy_wait;

    mutable std::mutex mu_;
    std::condition_variable work_cv_, activity_cv_, dispatch_cv_, renew_cv_, idle_cv_;
    std::unordered_map<std::string, std::shared_ptr<LiveInstance>> instances_;  // guarded by mu_
    std::deque<std::shared_ptr<LiveInstance>> ready_;                          // guarded by mu_
    std::deque<ActivityWork> activity_queue_;                                   // guarded by mu_
    std::unordered_set<std::int64_t> delivered_inbox_;                          // guarded by mu_
    // Inbox rows whose consuming commit is durable, still in delivered_inbox_ until the
    // dispatcher's next inbox read starts (a read that raced the commit may still see them).
    std::vector<std::int64_t> consumed_inbox_;                                  // guarded by mu_
    // Where the dispatcher's inbox reads left off (store::Store::owned_inbox_since), and the
    // lowest row given back (undelivered, skipped) since the running read started: the next
    // read goes back to it. Both guarded by mu_.
    store::InboxCursor inbox_cursor_;
    std::int64_t inbox_rewind_ = std::numeric_limits<std::int64_t>::max();
    std::deque<std::string> to_adopt_;                                          // guarded by mu_
    // Claims in flight (submitted, not yet durable) and claims durable but not yet loaded (id,
    // taken over from a host that left it): the dispatcher does not wait for a claim's commit,
    // it loads what the last ones got at its next look. Both guarded by mu_.
    std::unordered_set<std::string> claiming_;
    std::vector<std::pair<std::string, bool>> claimed_;
    std::priority_queue<std::int64_t, std::vector<std::int64_t>, std::greater<>> timers_;  // guarded by mu_
    // Instances holding a lingering commit, in the order they are due; guarded by mu_.
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::weak_ptr<LiveInstance>>> linger_due_;
    int running_episodes_ = 0;       // guarded by mu_
    int running_activities_ = 0;     // guarded by mu_
    // Episode workers running an activity themselves: meanwhile idle activity workers run the
    // episodes that become ready. Guarded by mu_.
    int inline_activities_ = 0;
    // Activities from task rows: claimed and queued or running, per name; guarded by mu_.
    std::unordered_map<std::string, int> tasks_by_name_;
    int tasks_held_ = 0;                                   // guarded by mu_
    struct HeldTask {
        CancellationToken token;
        std::chrono::steady_clock::time_point claimed_at;  // clock->steady_now()
    };
    std::unordered_map<std::int64_t, HeldTask> held_tasks_;  // by row id; guarded by mu_
    // Results of task rows for the dispatcher's next write, which delivers them (row deletes,
    // inbox rows) in one commit with its next claim (Store::complete_and_claim_tasks).
    // Guarded by mu_.
    std::vector<store::TaskCompletion> task_results_;
    // Rows whose result is buffered or being written: not leaked, though no run holds them.
    // Guarded by mu_.
    std::unordered_set<std::int64_t> completing_rows_;
    // Task claims started / finished: a renewal that overlapped a claim may miss its rows in
    // held_tasks_ and must not release them as leaked. Guarded by mu_.
    std::uint64_t task_claims_started_ = 0, task_claims_done_ = 0;
    bool dispatch_requested_ = false;  // guarded by mu_
    bool at_capacity_ = false;         // the last look found max_active_instances in memory; guarded by mu_
    bool linger_replan_ = false;       // a first lingering commit: the dispatcher's wake-up changes; guarded by mu_
    bool started_ = false, stopping_ = false, stopped_ = false;  // guarded by mu_
    bool workers_stop_ = false, activities_stop_ = false, dispatcher_stop_ = false, renewer_stop_ = false;  // guarded by mu_
    std::chrono::steady_clock::time_point last_renewal_ok_;  // clock->steady_now(); guarded by mu_
    // Until then readiness reports the host as recently fenced (clock->steady_now()); guarded by mu_.
    std::chrono::steady_clock::time_point fenced_until_{};

    std::unique_ptr<detail::Scheduler> scheduler;  // fires schedule ticks (HostOptions::run_schedules)
    std::vector<std::thread> episode_threads_, activity_threads_;
    std::thread dispatcher_thread_, renewer_thread_;
    // Store::subscribe_work's id (wakes the dispatcher when another process commits work);
    // set by start(), undone by stop() before the dispatcher is joined.
    std::optional<std::uint64_t> work_subscription_;
};

}  // namespace durable
