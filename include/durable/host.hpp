// durable/host.hpp — a worker process's engine: runs orchestrations and activities.
//
// A Host claims instances from the database with leases, keeps the ones it works on in
// memory (a new event resumes the cached coroutine; replay happens only after eviction,
// restart or takeover), runs activities on a worker pool through the resilience policies,
// renews its leases on a background thread and fences itself when renewal fails. Several
// hosts, in one process or many, may share one database file.
//
// Lifecycle: construct, start(), ..., stop() (or destroy). stop() shuts down in this order:
// stop taking new work; let running episodes finish; stop activity workers (in-flight
// activities are cancelled and will run again elsewhere); flush the commit queue; release
// leases (instances with work in flight are released for immediate takeover); stop the
// renewer; join every thread. It returns in bounded time.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <spdlog/logger.h>
#include <string>
#include <vector>

#include "durable/clock.hpp"
#include "durable/database.hpp"
#include "durable/metrics.hpp"
#include "durable/registry.hpp"
#include "durable/resilience.hpp"
#include "durable/tracing.hpp"

namespace durable {

class Client;
namespace detail {
struct ClientAttachment;
}

struct HostOptions {
    std::string host_id;                                   // empty: hostname-pid-random
    std::chrono::milliseconds lease_duration{10'000};      // renewed every half of it
    int episode_threads = 1;                               // threads running orchestrator code
    int activity_threads = 4;                              // activity worker pool
    std::size_t max_active_instances = 2'000;              // claimed and worked on at once
    std::size_t max_cached_instances = 10'000;             // idle instances kept in memory (LRU)
    std::chrono::milliseconds idle_eviction{60'000};       // idle this long: released, evicted
    std::chrono::milliseconds poll_interval{50};           // look for other processes' work
    // How long an episode's commit may wait for the next episode of its instance while the
    // activities it started still run on this host, so that a chain of quick activities
    // commits once instead of once per step. Orchestrator decisions stay exactly-once; what
    // a crash can cost is activities that finished within this window running again (as
    // in-flight ones do anyway). Commits that others wait for (completion, timers, messages,
    // sub-orchestrations, continue-as-new) never wait. Zero: every episode commits at once.
    std::chrono::microseconds commit_linger{1'000};
    int claim_batch = 64;                                  // instances (and activity tasks) claimed per look at most
    int max_recoveries = 5;                                // takeovers without progress: poison
    std::size_t max_history_events = 100'000;
    std::size_t suggest_continue_as_new_at = 10'000;
    std::size_t max_payload_bytes = 256 * 1024;
    ResiliencePolicy default_activity_policy{};            // for activities without their own
    // Fire the ticks of due schedules (durable/schedule.hpp) on this host. The host looks at
    // the schedules when the earliest is due, when a client of this process changes one, and
    // at least this often (for schedules other processes change).
    bool run_schedules = true;
    std::chrono::milliseconds schedule_poll_interval{1'000};
    std::shared_ptr<Clock> clock;                          // default: SystemClock
    std::shared_ptr<spdlog::logger> logger;                // default: spdlog's default logger
    SpanSink span_sink;                                    // receives a span per episode and activity
};

// Whether a host can do its work now (an HTTP /readyz answers from it).
struct Readiness {
    bool ready = false;
    std::vector<std::string> problems;  // why not, one line each (empty when ready)
};

struct HostStats {
    std::int64_t episodes = 0, activities = 0, completed = 0, failed = 0, claims = 0, takeovers = 0,
                 lease_conflicts = 0, renewals = 0, replays = 0;
    std::size_t cached = 0;  // instances in memory
    std::size_t active = 0;  // of those, with work in flight (running, queued, activities, commits not yet durable)
};

class Host {
public:
    Host(Database db, std::shared_ptr<const Registry> registry, HostOptions options = {});
    ~Host();
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    // Starts the host's threads. Throws StoreError if the database cannot be written.
    void start();
    // Stops as described above; idempotent.
    void stop();
    // Stops without releasing anything, as a crash would (for tests of failover).
    void abandon();

    const std::string& id() const;
    // A client on the same database whose instances this host starts at once (no claim).
    Client client();
    HostStats stats() const;
    Metrics& metrics();
    // Prometheus text of this host's metrics: its counters and histograms, per-activity
    // retries, timeouts and circuit-breaker state, shared providers, the store (commits,
    // writes per commit, WAL size, checkpoint time, busy wait) and the process's event
    // distributor and change feed. Label values are escaped (see metrics.hpp).
    std::string metrics_text();
    // Ready when the host runs, its database opens and reads from a new connection, its last
    // lease renewal succeeded within two thirds of the lease, and it has not fenced itself
    // (or woken past its fencing point) within the last lease duration.
    Readiness readiness() const;
    // The database this host works on.
    Database database() const;

private:
    struct Impl;  // runtime/host_impl.hpp
    friend class Client;
    friend struct detail::ClientAttachment;
    std::shared_ptr<Impl> impl_;
};

}  // namespace durable
