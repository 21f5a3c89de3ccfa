// W8 idle: N instances each waiting for an external event, then every event raised.
//
// Start phase: this process's attached client schedules N bench.idle instances (schedule_async,
// C in flight: no thread per call); the phase ends when the host has run every instance's
// first episode (each is then Running, waiting for "go"). While they wait, the process's RSS
// is sampled (every 50 ms): the host keeps at most max_cached_instances of them in memory and
// evicts the rest, so memory stays flat however many wait.
// Event phase: "go" (value i) raised on instance i, C at a time (raise_event_async: many share a
// commit); the phase ends when the host has completed all N. Evicted instances are claimed again and replayed (a two-event history).
// Checked: each instance Completed exactly once with output i + 1.
#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <fmt/format.h>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "bench.hpp"
#include "orchestrations.hpp"

namespace durable::bench {
namespace {

// Resident set size of this process, in MiB (VmRSS of /proc/self/status).
double rss_mib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    }
    return 0;
}

// Samples the RSS every 50 ms until stopped; keeps the peak.
class RssSampler {
public:
    RssSampler() : thread_([this] { run(); }) {}
    ~RssSampler() { stop(); }
    void stop() {
        {
            std::lock_guard lock(mu_);
            if (stop_) return;
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    double peak() {
        std::lock_guard lock(mu_);
        return peak_;
    }

private:
    void run() {
        std::unique_lock lock(mu_);
        do {
            peak_ = std::max(peak_, rss_mib());
        } while (!cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stop_; }));
    }
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;  // guarded by mu_
    double peak_ = 0;    // guarded by mu_
    std::thread thread_;
};

// Waits (bounded by `deadline`) until `done()`; looks every 10 ms.
bool wait_until(const std::function<bool()>& done, Clock::time_point deadline) {
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

}  // namespace

Result run_idle(const Options& options) {
    const int n = options.instances.value_or(100'000), c = options.concurrency.value_or(100);
    Result r;
    DbFile file(options, "idle");
    Database db = open_database(options, file.path());
    set_host_label("local");
    auto ho = host_options(options, "bench-idle");
    Host host(db, make_registry(), ho);
    host.start();
    progress(fmt::format("W8 idle: {} instances waiting for an event ({} cached at most), then every event raised, "
                         "sync={}, db {}",
                         n, ho.max_cached_instances, options.sync, file.path()));
    auto deadline = Clock::now() + options.timeout;
    auto client = host.client();
    const double rss_before = rss_mib();
    const auto episodes0 = host.stats().episodes;
    const auto completed0 = host.stats().completed;

    // ---- start phase ----
    std::vector<std::string> ids(static_cast<std::size_t>(n));
    std::mutex mu;
    std::condition_variable cv;
    int scheduled = 0, in_flight = 0;  // guarded by mu
    std::vector<std::string> errors;   // guarded by mu
    RssSampler sampler;
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    {
        std::unique_lock lock(mu);
        for (int i = 0; i < n; ++i) {
            if (!cv.wait_until(lock, deadline, [&] { return in_flight < c; })) break;
            ++in_flight;
            lock.unlock();
            client.schedule_async(kIdle, Json(), {}, [&, i](std::optional<ScheduleResult> s, std::exception_ptr e) {
                std::lock_guard l(mu);
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                        errors.push_back(fmt::format("schedule failed: #{}: {}", i, ex.what()));
                    }
                } else {
                    ids[static_cast<std::size_t>(i)] = s->id;
                    ++scheduled;
                }
                --in_flight;
                cv.notify_all();
            });
            lock.lock();
        }
        cv.wait_until(lock, deadline, [&] { return in_flight == 0; });
    }
    double schedule_seconds = seconds_since(t0);
    bool all_started = wait_until([&] { return host.stats().episodes - episodes0 >= n; }, deadline);
    double start_seconds = seconds_since(t0);
    double start_cpu = process_cpu_seconds() - cpu0;
    // Waiting: the host has evicted what it does not keep (its sweep runs every second).
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    double rss_waiting = rss_mib();
    auto cached_waiting = host.stats().cached;
    sampler.stop();
    double rss_peak = sampler.peak();
    for (auto& e : errors) add_error(r, e);
    errors.clear();
    if (!all_started) add_error(r, fmt::format("start: {} of {} instances started in time", host.stats().episodes - episodes0, n));

    // ---- event phase ----
    std::vector<std::int64_t> raised_at(static_cast<std::size_t>(n), 0);  // wall ms, by instance
    auto t1 = Clock::now();
    double cpu1 = process_cpu_seconds();
    {
        // C raises in flight (raise_event_async: no thread per call), so many share a commit.
        std::unique_lock lock(mu);
        for (int i = 0; i < n && errors.empty(); ++i) {
            const auto& id = ids[static_cast<std::size_t>(i)];
            if (id.empty()) continue;
            if (!cv.wait_until(lock, deadline, [&] { return in_flight < c; })) break;
            ++in_flight;
            lock.unlock();
            raised_at[static_cast<std::size_t>(i)] = wall_ms();
            client.raise_event_async(id, "go", i, [&, i](std::exception_ptr e) {
                std::lock_guard l(mu);
                if (e) {
                    raised_at[static_cast<std::size_t>(i)] = 0;
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                        errors.push_back(fmt::format("raise failed: #{}: {}", i, ex.what()));
                    }
                }
                --in_flight;
                cv.notify_all();
            });
            lock.lock();
        }
        cv.wait_until(lock, deadline, [&] { return in_flight == 0; });
    }
    for (auto& e : errors) add_error(r, e);
    double raise_seconds = seconds_since(t1);
    bool all_done = wait_until([&] { return host.stats().completed - completed0 >= n; }, deadline);
    double event_seconds = seconds_since(t1);
    double event_cpu = process_cpu_seconds() - cpu1;
    if (!all_done) {
        add_error(r, fmt::format("events: {} of {} instances completed in time", host.stats().completed - completed0, n));
    }
    r.line["host_stats"] = host_stats_json(host, db);
    r.line["machine"] = machine_info(file);

    // ---- verification ----
    std::vector<std::string> valid;
    std::vector<double> latencies;
    std::int64_t completed = 0;
    for (int i = 0; i < n; ++i) {
        const auto& id = ids[static_cast<std::size_t>(i)];
        if (id.empty()) continue;
        valid.push_back(id);
        auto s = client.get_status(id);
        if (s && s->status == Status::Completed) {
            ++completed;
            if (s->completed_at_ms && raised_at[static_cast<std::size_t>(i)] > 0) {
                latencies.push_back(static_cast<double>(std::max<std::int64_t>(
                    0, *s->completed_at_ms - raised_at[static_cast<std::size_t>(i)])));
            }
        }
    }
    std::unordered_map<std::string, int> index;
    for (int i = 0; i < n; ++i) {
        if (!ids[static_cast<std::size_t>(i)].empty()) index[ids[static_cast<std::size_t>(i)]] = i;
    }
    std::int64_t duplicates = verify_instances(r, client, valid, [&](const InstanceState& s) -> std::string {
        // Instance i was raised with i: its output is i + 1.
        auto it = index.find(s.id);
        std::int64_t want = it == index.end() ? -1 : it->second + 1;
        if (!s.output.is_number_integer() || s.output.get<std::int64_t>() != want) {
            return fmt::format("expected {}, got {}", want, s.output.dump().substr(0, 100));
        }
        return {};
    });
    auto completed_by_host = host.stats().completed - completed0;
    if (completed_by_host > n) {
        duplicates = std::max<std::int64_t>(duplicates, completed_by_host - n);
        add_error(r, fmt::format("host completion count: {} completions for {} instances", completed_by_host, n));
    }
    host.stop();

    r.line["scheduled_per_sec"] = std::round(n / std::max(schedule_seconds, 1e-9) * 10.0) / 10.0;
    r.line["started_per_sec"] = std::round(n / std::max(start_seconds, 1e-9) * 10.0) / 10.0;
    r.line["start_seconds"] = std::round(start_seconds * 1e3) / 1e3;
    r.line["start_cpu_us_per_instance"] = std::round(start_cpu * 1e6 / n);
    r.line["rss_mib_before"] = std::round(rss_before * 10.0) / 10.0;
    r.line["rss_mib_waiting"] = std::round(rss_waiting * 10.0) / 10.0;
    r.line["rss_mib_peak_starting"] = std::round(rss_peak * 10.0) / 10.0;
    r.line["cached_instances_waiting"] = cached_waiting;
    r.line["raised_per_sec"] = std::round(n / std::max(raise_seconds, 1e-9) * 10.0) / 10.0;
    r.line["events_per_sec"] = std::round(n / std::max(event_seconds, 1e-9) * 10.0) / 10.0;
    r.line["event_seconds"] = std::round(event_seconds * 1e3) / 1e3;
    r.line["event_cpu_us_per_instance"] = std::round(event_cpu * 1e6 / n);
    r.line["concurrency"] = c;
    r.line["max_cached_instances"] = ho.max_cached_instances;
    // The whole run's throughput is the event phase's (starts have their own figure).
    fill_common(r, options, "idle", n, 0, event_seconds, latencies, completed, duplicates);
    return r;
}

}  // namespace durable::bench
