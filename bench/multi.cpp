// The multi-process workloads: W4 recovery and W5 hosts. Hosts run in worker processes
// (fleet.hpp) on one database file; this process schedules with a standalone Client, so
// instances are created unleased and the hosts claim them.
//
// Who completed an instance is read from its output: bench.sequence's last activity
// returns the label of the host it ran on, and it runs on the host that owns the instance
// when its result is committed with the completion (after a takeover the new owner runs it
// again). So the output names the completing host, straight from the database.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <thread>
#include <unordered_set>

#include "bench.hpp"
#include "fleet.hpp"
#include "orchestrations.hpp"

namespace durable::bench {
namespace {

constexpr int kSteps = 5;

std::vector<std::string> worker_args(const Options& o, const std::string& db, const std::string& id,
                                     const std::optional<std::string>& exec_log) {
    std::vector<std::string> a{"--role", "worker", "--db", db, "--sync", o.sync, "--host-id", id};
    if (o.lease) {
        a.push_back("--lease");
        a.push_back(fmt::format("{}ms", o.lease->count()));
    }
    if (exec_log) {
        a.push_back("--exec-log");
        a.push_back(*exec_log);
    }
    if (o.verbose) a.push_back("--verbose");
    return a;
}

// Spawns `count` workers and waits until every one has started its host.
void start_fleet(Fleet& fleet, const Options& o, const std::string& db, const std::vector<std::string>& ids,
                 const std::vector<std::optional<std::string>>& logs, Clock::time_point deadline) {
    for (std::size_t i = 0; i < ids.size(); ++i) fleet.spawn(ids[i], worker_args(o, db, ids[i], logs[i]));
    std::string why;
    if (!fleet.wait_until([](const auto& ws) { return std::all_of(ws.begin(), ws.end(), [](auto& w) { return w.ready; }); },
                          deadline, &why)) {
        throw Error("the worker processes did not get ready: " + why);
    }
    fleet.send_all("go");
    if (!fleet.wait_until(
            [](const auto& ws) { return std::all_of(ws.begin(), ws.end(), [](auto& w) { return w.started; }); },
            deadline, &why)) {
        throw Error("the worker processes did not start their hosts: " + why);
    }
}

// Schedules `n` bench.sequence instances from `threads` threads (their creates share the
// store's group commits), keeping at most `window` of them unfinished when `window` > 0.
// Unfinished = scheduled minus what the fleet reports completed.
class Scheduler {
public:
    Scheduler(Client client, Fleet* fleet, int n, int window, int threads, Clock::time_point deadline)
        : client_(std::move(client)), fleet_(fleet), n_(n), window_(window), deadline_(deadline),
          ids_(static_cast<std::size_t>(n)) {
        threads = std::max(1, std::min(threads, n));
        for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { run(); });
    }
    ~Scheduler() { join(); }
    // Lets the threads start scheduling.
    void go() {
        {
            std::lock_guard lock(mu_);
            go_ = true;
        }
        go_cv_.notify_all();
    }
    void join() {
        go();
        for (auto& t : threads_) {
            if (t.joinable()) t.join();
        }
    }
    const std::vector<std::string>& ids() const { return ids_; }
    std::string error() const {
        std::lock_guard lock(mu_);
        return error_;
    }
    void cancel() {
        cancelled_ = true;
        if (fleet_) fleet_->notify();
    }

private:
    void run() {
        {
            std::unique_lock lock(mu_);
            go_cv_.wait(lock, [&] { return go_; });
        }
        for (;;) {
            int k = -1;
            if (window_ > 0 && fleet_) {
                // The slot is reserved inside the predicate, under the fleet's lock.
                bool ok = fleet_->wait_until(
                    [&](const std::vector<WorkerState>& ws) {
                        if (cancelled_ || next_ >= n_) return true;
                        if (next_ - Fleet::completed(ws) < window_) {
                            k = next_++;
                            return true;
                        }
                        return false;
                    },
                    deadline_);
                if (!ok) {
                    fail("the window did not open: workers stopped reporting completions or time ran out");
                    return;
                }
            } else {
                std::lock_guard lock(mu_);
                if (next_ < n_) k = next_++;
            }
            if (k < 0 || cancelled_) return;
            try {
                ids_[static_cast<std::size_t>(k)] = client_.schedule(kSequence, sequence_input(kSteps));
            } catch (const std::exception& e) {
                fail(fmt::format("scheduling instance #{} failed: {}", k, e.what()));
                return;
            }
        }
    }
    void fail(const std::string& why) {
        {
            std::lock_guard lock(mu_);
            if (error_.empty()) error_ = why;
        }
        cancel();
    }

    Client client_;
    Fleet* fleet_;
    const int n_, window_;
    Clock::time_point deadline_;
    std::vector<std::string> ids_;  // slot k written only by the thread that reserved k
    int next_ = 0;                  // guarded by the fleet's lock (windowed) or mu_
    std::atomic<bool> cancelled_{false};
    mutable std::mutex mu_;
    std::string error_;  // guarded by mu_
    bool go_ = false;    // guarded by mu_
    std::condition_variable go_cv_;
    std::vector<std::thread> threads_;
};

// Sums a counter over worker stats.
std::int64_t sum_of(const std::vector<Json>& stats, const char* key) {
    std::int64_t total = 0;
    for (const auto& s : stats) total += s.value(key, std::int64_t{0});
    return total;
}

double sum_of_double(const std::vector<Json>& stats, const char* key) {
    double total = 0;
    for (const auto& s : stats) total += s.value(key, 0.0);
    return total;
}

// Final (or, for a killed worker, last reported) stats of each worker.
std::vector<Json> worker_stats(const std::vector<WorkerState>& ws) {
    std::vector<Json> out;
    for (const auto& w : ws) {
        Json s = w.final_stats.is_null() ? w.stats : w.final_stats;
        s["host"] = w.id;
        if (w.killed) s["killed"] = true;
        out.push_back(std::move(s));
    }
    return out;
}

struct SharedRun {
    int hosts = 0;
    double seconds = 0;
    std::int64_t completed = 0, duplicates = 0;
    std::vector<double> latencies_ms;
    std::vector<double> shares;
    std::vector<Json> stats;
    double driver_cpu_seconds = 0;  // this process (scheduling) during the run
};

// W5's unit: `hosts` workers share the W1 load (n instances, window c) on one file.
SharedRun run_shared(Result& r, const Options& o, int hosts, int n, int c, Clock::time_point deadline) {
    SharedRun run;
    run.hosts = hosts;
    DbFile file(o, fmt::format("hosts{}", hosts));
    Database db = open_database(o, file.path());  // created and migrated before workers open it
    Client client(db);
    Fleet fleet;
    std::vector<std::string> ids;
    for (int i = 0; i < hosts; ++i) ids.push_back(fmt::format("h{}of{}", i + 1, hosts));
    start_fleet(fleet, o, file.path(), ids, std::vector<std::optional<std::string>>(ids.size()), deadline);
    if (hosts == 1) r.line["machine"] = machine_info(file);

    Scheduler scheduler(client, &fleet, n, c, std::min(c, 8), deadline);
    auto t0 = Clock::now();
    double driver_cpu0 = process_cpu_seconds();
    scheduler.go();
    std::string why;
    Clock::time_point last_tick = t0;
    bool done = fleet.wait_until(
        [&](const std::vector<WorkerState>& ws) {
            auto d = Fleet::completed(ws);
            if (Clock::now() - last_tick > std::chrono::seconds(1)) {
                last_tick = Clock::now();
                progress(fmt::format("W5 hosts={}: {}/{} completed", hosts, d, n));
            }
            return d >= n || !scheduler.error().empty();
        },
        deadline, &why);
    auto t_end = Clock::now();
    run.seconds = std::chrono::duration<double>(t_end - t0).count();
    run.driver_cpu_seconds = process_cpu_seconds() - driver_cpu0;
    if (!done) add_error(r, fmt::format("hosts={}: not all instances completed: {}", hosts, why));
    if (auto e = scheduler.error(); !e.empty()) add_error(r, fmt::format("hosts={}: {}", hosts, e));
    scheduler.cancel();
    scheduler.join();
    auto finals = fleet.stop_all(Clock::now() + std::chrono::seconds(30));
    run.stats = worker_stats(finals);

    std::vector<std::string> scheduled;
    for (const auto& id : scheduler.ids()) {
        if (!id.empty()) scheduled.push_back(id);
    }
    std::map<std::string, std::int64_t> by_host;
    run.duplicates = verify_instances(r, client, scheduled, [&](const InstanceState& s) {
        auto why_not = check_sequence_output(s.output, kSteps);
        if (why_not.empty()) {
            ++by_host[s.output["host"].get<std::string>()];
            if (s.completed_at_ms) run.latencies_ms.push_back(static_cast<double>(*s.completed_at_ms - s.created_at_ms));
            ++run.completed;
        }
        return why_not;
    });
    for (const auto& id : ids) {
        run.shares.push_back(n > 0 ? std::round(static_cast<double>(by_host[id]) / n * 1000.0) / 1000.0 : 0.0);
        by_host.erase(id);
    }
    for (const auto& [host, count] : by_host) {
        add_error(r, fmt::format("unknown host: {} instances name host '{}'", count, host));
    }
    std::int64_t counted = sum_of(run.stats, "completed");
    if (counted > n) {
        run.duplicates = std::max<std::int64_t>(run.duplicates, counted - n);
        add_error(r, fmt::format("host completion count: hosts={}: the hosts counted {} completions for {} instances",
                                 hosts, counted, n));
    }
    if (static_cast<int>(scheduled.size()) != n) {
        add_error(r, fmt::format("incomplete: hosts={}: {} of {} instances were scheduled", hosts, scheduled.size(), n));
    }
    progress(fmt::format("W5 hosts={}: {} instances in {:.3f} s ({:.0f}/s), shares {}", hosts, run.completed,
                         run.seconds, run.completed / std::max(run.seconds, 1e-9), fmt::join(run.shares, ", ")));
    return run;
}

}  // namespace

Result run_hosts(const Options& options) {
    const int n = options.instances.value_or(2000), c = options.concurrency.value_or(50);
    std::vector<int> counts = options.hosts.empty() ? std::vector<int>{1, 2, 4} : options.hosts;
    Result r;
    progress(fmt::format("W5 hosts: {} instances x {} activities, {} in flight, on {} worker processes, sync={}", n,
                         kSteps, c, fmt::join(counts, " / "), options.sync));
    auto deadline = Clock::now() + options.timeout;
    Json ops = Json::object(), shares = Json::object(), p50 = Json::object(), p99 = Json::object(),
         conflicts = Json::object(), busy = Json::object(), stats = Json::object(), ratio = Json::object(),
         cpu = Json::object();
    std::vector<double> all_latencies;
    double seconds = 0;
    std::int64_t completed = 0, duplicates = 0;
    double base = 0;
    for (int h : counts) {
        SharedRun run;
        try {
            run = run_shared(r, options, h, n, c, deadline);
        } catch (const std::exception& e) {
            add_error(r, fmt::format("hosts={}: the run failed: {}", h, e.what()));
            continue;
        }
        auto key = std::to_string(h);
        double rate = run.seconds > 0 ? run.completed / run.seconds : 0;
        ops[key] = std::round(rate * 10.0) / 10.0;
        if (h == counts.front()) base = rate;
        if (base > 0) ratio[key] = std::round(rate / base * 1000.0) / 1000.0;
        shares[key] = run.shares;
        p50[key] = std::round(percentile(run.latencies_ms, 0.5) * 1000.0) / 1000.0;
        p99[key] = std::round(percentile(run.latencies_ms, 0.99) * 1000.0) / 1000.0;
        conflicts[key] = sum_of(run.stats, "lease_conflicts");
        busy[key] = std::round(sum_of_double(run.stats, "busy_wait_seconds") * 1e4) / 1e4;
        stats[key] = run.stats;
        // Workers' CPU covers their whole life (start-up and stop too); the driver's only the run.
        cpu[key] = std::round((sum_of_double(run.stats, "cpu_seconds") + run.driver_cpu_seconds) * 1e4) / 1e4;
        all_latencies.insert(all_latencies.end(), run.latencies_ms.begin(), run.latencies_ms.end());
        seconds += run.seconds;
        completed += run.completed;
        duplicates += run.duplicates;
    }
    r.line["concurrency"] = c;
    r.line["instances_per_run"] = n;
    r.line["orchestrations_per_sec_by_hosts"] = ops;
    r.line["throughput_vs_first"] = ratio;
    r.line["per_host_share"] = shares;
    r.line["p50_ms_by_hosts"] = p50;
    r.line["p99_ms_by_hosts"] = p99;
    r.line["lease_conflicts_by_hosts"] = conflicts;
    r.line["busy_wait_seconds_by_hosts"] = busy;
    r.line["host_stats_by_hosts"] = stats;
    r.line["cpu_seconds_by_hosts"] = cpu;
    r.line["latency_source"] = "instance rows: completed_at - created_at (ms resolution)";
    auto runs = static_cast<std::int64_t>(counts.size());
    fill_common(r, options, "hosts", n * runs, static_cast<std::int64_t>(n) * kSteps * runs, seconds, all_latencies,
                completed, duplicates);
    return r;
}

Result run_recovery(const Options& options) {
    const int n = options.instances.value_or(500);
    const int hosts = options.hosts.empty() ? 3 : std::max(2, *std::max_element(options.hosts.begin(), options.hosts.end()));
    Options o = options;
    if (!o.lease) o.lease = std::chrono::milliseconds(2000);
    const double lease_s = static_cast<double>(o.lease->count()) / 1000.0;
    Result r;
    auto deadline = Clock::now() + o.timeout;
    DbFile file(o, "recovery");
    progress(fmt::format("W4 recovery: {} instances x {} activities on {} worker processes, lease {} s, one killed "
                         "mid-way, sync={}, db {}",
                         n, kSteps, hosts, lease_s, o.sync, file.path()));
    Database db = open_database(o, file.path());
    Client client(db);
    auto created_from = std::chrono::system_clock::now() - std::chrono::seconds(1);

    // Every instance exists before the hosts start: recovery, not scheduling, is measured.
    Scheduler scheduler(client, nullptr, n, 0, 8, deadline);
    scheduler.go();
    scheduler.join();
    if (auto e = scheduler.error(); !e.empty()) {
        add_error(r, e);
        fill_common(r, o, "recovery", n, static_cast<std::int64_t>(n) * kSteps, 0, {}, 0, 0);
        return r;
    }

    Fleet fleet;
    std::vector<std::string> ids;
    std::vector<std::optional<std::string>> logs;
    for (int i = 0; i < hosts; ++i) {
        ids.push_back(fmt::format("h{}", i + 1));
        logs.emplace_back(file.side_file(fmt::format(".exec-h{}.log", i + 1)));
    }
    start_fleet(fleet, o, file.path(), ids, logs, deadline);
    auto t0 = Clock::now();

    // Mid-way: kill the host with the most instances in flight.
    std::string why;
    if (!fleet.wait_until([&](const auto& ws) { return Fleet::completed(ws) >= n / 2; }, deadline, &why)) {
        add_error(r, "no progress: half the instances did not complete: " + why);
    }
    auto before = fleet.snapshot();
    std::size_t victim = 0;
    for (std::size_t i = 1; i < before.size(); ++i) {
        if (before[i].stats.value("active", 0) > before[victim].stats.value("active", 0)) victim = i;
    }
    std::int64_t completed_at_kill = Fleet::completed(before);
    fleet.kill(victim);
    auto t_kill = Clock::now();
    progress(fmt::format("W4 recovery: killed {} (pid {}) with {} instances active, {}/{} completed", before[victim].id,
                         before[victim].pid, before[victim].stats.value("active", 0), completed_at_kill, n));

    // Until no instance of this run is unfinished (read from the database every 2 ms).
    QueryFilter unfinished;
    unfinished.statuses = {Status::Pending, Status::Running, Status::Suspended};
    unfinished.created_from = created_from;
    bool all_done = false;
    Clock::time_point t_done = t_kill, last_tick = t_kill;
    while (Clock::now() < deadline) {
        if (client.query(unfinished, 1).instances.empty()) {
            t_done = Clock::now();
            all_done = true;
            break;
        }
        if (Clock::now() - last_tick > std::chrono::milliseconds(500)) {
            last_tick = Clock::now();
            progress(fmt::format("W4 recovery: {:.1f} s after the kill, {}/{} reported completed", seconds_since(t_kill),
                                 Fleet::completed(fleet.snapshot()), n));
        }
        // Nothing signals "done" across processes; a 2 ms look bounds the measurement error.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!all_done) add_error(r, "incomplete: instances were still unfinished when the time ran out");
    double recovery = std::chrono::duration<double>(t_done - t_kill).count();
    double seconds = std::chrono::duration<double>(t_done - t0).count();
    auto finals = fleet.stop_all(Clock::now() + std::chrono::seconds(30));
    auto stats = worker_stats(finals);

    // Activity executions: every line is one execution; a key seen twice ran twice.
    std::int64_t executions = 0;
    std::unordered_set<std::string> keys;
    for (const auto& log : logs) {
        std::ifstream in(*log);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            ++executions;
            keys.insert(line);
        }
    }
    auto expected_keys = static_cast<std::int64_t>(n) * kSteps;
    if (static_cast<std::int64_t>(keys.size()) != expected_keys) {
        add_error(r, fmt::format("activity count: {} distinct activity executions, expected {}", keys.size(),
                                 expected_keys));
    }

    std::vector<double> latencies;
    std::int64_t completed = 0;
    std::vector<std::string> scheduled;
    for (const auto& id : scheduler.ids()) {
        if (!id.empty()) scheduled.push_back(id);
    }
    auto duplicates = verify_instances(r, client, scheduled, [&](const InstanceState& s) {
        auto why_not = check_sequence_output(s.output, kSteps);
        if (why_not.empty()) {
            ++completed;
            if (s.completed_at_ms) latencies.push_back(static_cast<double>(*s.completed_at_ms - s.created_at_ms));
        }
        return why_not;
    });
    std::int64_t takeovers = 0;
    for (std::size_t i = 0; i < stats.size(); ++i) {
        if (i != victim) takeovers += stats[i].value("takeovers", std::int64_t{0});
    }
    r.line["hosts"] = hosts;
    r.line["lease_seconds"] = lease_s;
    r.line["recovery_seconds"] = std::round(recovery * 1000.0) / 1000.0;
    r.line["recovery_target_seconds"] = lease_s + 1.0;
    r.line["recovered_within_target"] = all_done && recovery <= lease_s + 1.0;
    r.line["reexecuted_activities"] = executions - static_cast<std::int64_t>(keys.size());
    r.line["activity_executions"] = executions;
    r.line["killed_host"] = before[victim].id;
    r.line["killed_host_active_instances"] = before[victim].stats.value("active", 0);
    // In flight on the victim when it died: the instances it had claimed and not finished,
    // whose progress (up to all their activities: commits linger, HostOptions::commit_linger)
    // was not durable yet. Re-executed activities should stay within what those could have run.
    {
        const auto& vs = before[victim].stats;
        std::int64_t unfinished = vs.value("claims", std::int64_t{0}) - vs.value("completed", std::int64_t{0}) -
                                  vs.value("failed", std::int64_t{0});  // takeovers are claims too
        unfinished = std::max<std::int64_t>(unfinished, 0);
        r.line["killed_host_unfinished_instances"] = unfinished;
        r.line["inflight_activities_bound"] = unfinished * kSteps;
        r.line["reexecuted_within_inflight"] =
            executions - static_cast<std::int64_t>(keys.size()) <= unfinished * kSteps;
    }
    r.line["completed_at_kill"] = completed_at_kill;
    r.line["takeovers"] = takeovers;
    r.line["lease_conflicts"] = sum_of(stats, "lease_conflicts");
    r.line["claims"] = sum_of(stats, "claims");
    r.line["host_stats"] = stats;
    r.line["latency_source"] = "instance rows: completed_at - created_at (ms resolution; all scheduled before start)";
    r.line["machine"] = machine_info(file);
    fill_common(r, o, "recovery", n, expected_keys, seconds, latencies, completed, duplicates);
    return r;
}

}  // namespace durable::bench
