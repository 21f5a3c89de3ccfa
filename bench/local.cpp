// The in-process workloads: W1 sequence, W2 fan-out, W3 latency, W6 history. One host and
// its attached client share one Database handle in this process, as an application would.
// W7 remote is W1 with the activities on a separate worker process: this process's host
// registers only the orchestrations, so every activity is a task row claimed and completed
// by the worker.
//
// W1 and W2 are closed loops: C lanes (threads), each scheduling an instance and waiting
// for it (Client::wait_for_completion) before scheduling the next, until N instances have
// run; wall time runs from the first schedule to the last completion, and each instance's
// latency from its schedule call to the return of its wait.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <fmt/format.h>
#include <latch>
#include <mutex>
#include <thread>

#include <durable/dashboard.hpp>
#include <durable/http.hpp>
#include <durable/otlp.hpp>

#include "bench.hpp"
#include "fleet.hpp"
#include "orchestrations.hpp"

namespace durable::bench {
namespace {

// Prints "<label>: k/n completed" on stderr every second until stopped.
class Ticker {
public:
    Ticker(std::string label, const std::atomic<std::int64_t>& done, std::int64_t total)
        : label_(std::move(label)), done_(done), total_(total), t0_(Clock::now()), thread_([this] { run(); }) {}
    ~Ticker() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    void run() {
        std::unique_lock lock(mu_);
        while (!cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) {
            auto d = done_.load();
            progress(fmt::format("{}: {}/{} completed ({:.0f}/s)", label_, d, total_,
                                 static_cast<double>(d) / seconds_since(t0_)));
        }
    }

    std::string label_;
    const std::atomic<std::int64_t>& done_;
    std::int64_t total_;
    Clock::time_point t0_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;  // guarded by mu_
    std::thread thread_;
};

struct LaneOutcome {
    double seconds = 0;
    std::vector<std::string> ids;        // by instance index
    std::vector<double> latencies_ms;    // of the instances that completed
    std::int64_t completed = 0;
    double cpu_seconds = 0;              // CPU this process used meanwhile (all threads)
    std::int64_t context_switches = 0;   // of this process meanwhile
};

// Runs `n` instances through `lanes` closed-loop lanes. `schedule` starts one instance and
// returns its id; `check` judges a final state (empty string: right).
LaneOutcome run_lanes(Result& r, const Client& client, int n, int lanes, Clock::time_point deadline,
                      const std::string& label, const std::function<std::string(Client&)>& schedule,
                      const std::function<std::string(const InstanceState&)>& check) {
    LaneOutcome out;
    out.ids.resize(static_cast<std::size_t>(n));
    std::vector<double> latency(static_cast<std::size_t>(n), -1);
    std::atomic<int> next{0};
    std::atomic<std::int64_t> done{0};
    std::atomic<bool> abort{false};
    std::mutex mu;
    std::vector<Clock::time_point> finished(static_cast<std::size_t>(std::max(lanes, 1)));
    lanes = std::max(1, std::min(lanes, n));
    std::latch go(1);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(lanes));
    for (int lane = 0; lane < lanes; ++lane) {
        threads.emplace_back([&, lane] {
            pthread_setname_np(pthread_self(), "bench-client");
            Client c = client;
            go.wait();
            for (;;) {
                int i = next.fetch_add(1);
                if (i >= n || abort.load()) break;
                auto t = Clock::now();
                try {
                    std::string id = schedule(c);
                    out.ids[static_cast<std::size_t>(i)] = id;
                    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                    auto s = c.wait_for_completion(id, std::max(left, std::chrono::milliseconds(1)));
                    auto t_end = Clock::now();
                    latency[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::milli>(t_end - t).count();
                    finished[static_cast<std::size_t>(lane)] = t_end;
                    ++done;
                    if (auto why = check(s); !why.empty()) {
                        std::lock_guard lock(mu);
                        add_error(r, fmt::format("wrong output: {}: {}", id, why));
                    }
                } catch (const std::exception& e) {
                    abort = true;
                    std::lock_guard lock(mu);
                    add_error(r, fmt::format("lane failed: instance #{}: {}", i, e.what()));
                }
            }
        });
    }
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    auto switches0 = process_context_switches();
    {
        Ticker ticker(label, done, n);
        go.count_down();
        for (auto& t : threads) t.join();
    }
    auto t_end = t0;
    for (auto& f : finished) t_end = std::max(t_end, f);
    out.seconds = std::chrono::duration<double>(t_end - t0).count();
    out.cpu_seconds = process_cpu_seconds() - cpu0;
    out.context_switches = process_context_switches() - switches0;
    out.completed = done.load();
    for (double l : latency) {
        if (l >= 0) out.latencies_ms.push_back(l);
    }
    std::erase(out.ids, std::string());
    return out;
}

// As run_lanes, with no thread per lane: each lane is a chain of callbacks (schedule_async,
// then on_completion, whose callback schedules the lane's next instance), so waiting costs no
// thread and the lanes' wake-ups are the store's and the waiting thread's, shared by all.
// The state is shared with the callbacks, so a run that times out returns safely while
// callbacks are still due.
LaneOutcome run_async_lanes(Result& r, const Client& client, int n, int lanes, Clock::time_point deadline,
                            const std::string& label, const std::string& name, const Json& input,
                            const std::function<std::string(const InstanceState&)>& check) {
    struct Run {
        Client client;
        int n = 0;
        std::string name;
        Json input;
        Clock::time_point deadline;
        std::function<std::string(const InstanceState&)> check;
        std::vector<std::string> ids;        // by instance index; each written by its own lane
        std::vector<double> latency;         // by instance index; -1: not completed
        std::vector<Clock::time_point> finished;  // by lane
        std::atomic<int> next{0};
        std::atomic<std::int64_t> done{0};
        std::atomic<bool> abort{false};
        std::mutex mu;
        std::condition_variable cv;
        int lanes_left = 0;                  // guarded by mu
        std::vector<std::string> errors;     // guarded by mu
        explicit Run(Client c) : client(std::move(c)) {}

        void error(std::string text) {
            std::lock_guard lock(mu);
            errors.push_back(std::move(text));
        }
        void lane_done() {
            std::lock_guard lock(mu);
            if (--lanes_left == 0) cv.notify_all();
        }
        static std::string what(const std::exception_ptr& e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                return ex.what();
            } catch (...) {
                return "unknown error";
            }
        }
        static void start(const std::shared_ptr<Run>& run, int lane) {
            int i = run->next.fetch_add(1);
            if (i >= run->n || run->abort.load()) return run->lane_done();
            auto t = Clock::now();
            auto fail = [run, lane, i](const std::string& why) {
                run->abort = true;
                run->error(fmt::format("lane failed: instance #{}: {}", i, why));
                run->lane_done();
            };
            try {
                run->client.schedule_async(
                    run->name, run->input, {},
                    [run, lane, i, t, fail](std::optional<ScheduleResult> sr, std::exception_ptr e) {
                        if (e) return fail(what(e));
                        run->ids[static_cast<std::size_t>(i)] = sr->id;
                        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(run->deadline - Clock::now());
                        run->client.on_completion(
                            sr->id,
                            [run, lane, i, t, fail, id = sr->id](std::optional<InstanceState> s, std::exception_ptr e2) {
                                if (e2) return fail(what(e2));
                                auto t_end = Clock::now();
                                run->latency[static_cast<std::size_t>(i)] =
                                    std::chrono::duration<double, std::milli>(t_end - t).count();
                                run->finished[static_cast<std::size_t>(lane)] = t_end;
                                ++run->done;
                                if (auto why = run->check(*s); !why.empty()) {
                                    run->error(fmt::format("wrong output: {}: {}", id, why));
                                }
                                start(run, lane);
                            },
                            std::max(left, std::chrono::milliseconds(1)));
                    });
            } catch (const std::exception& ex) {
                fail(ex.what());
            }
        }
    };
    lanes = std::max(1, std::min(lanes, n));
    auto run = std::make_shared<Run>(client);
    run->n = n;
    run->name = name;
    run->input = input;
    run->deadline = deadline;
    run->check = check;
    run->ids.resize(static_cast<std::size_t>(n));
    run->latency.assign(static_cast<std::size_t>(n), -1);
    run->finished.resize(static_cast<std::size_t>(lanes));
    run->lanes_left = lanes;
    LaneOutcome out;
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    auto switches0 = process_context_switches();
    bool all_done = false;
    {
        Ticker ticker(label, run->done, n);
        for (int lane = 0; lane < lanes; ++lane) run->finished[static_cast<std::size_t>(lane)] = t0;
        for (int lane = 0; lane < lanes; ++lane) Run::start(run, lane);
        std::unique_lock lock(run->mu);
        // Every callback is bounded by the deadline (the waits' timeout); a minute more for
        // the last commits.
        all_done = run->cv.wait_until(lock, deadline + std::chrono::minutes(1), [&] { return run->lanes_left == 0; });
    }
    out.cpu_seconds = process_cpu_seconds() - cpu0;
    out.context_switches = process_context_switches() - switches0;
    std::lock_guard lock(run->mu);
    if (!all_done) add_error(r, fmt::format("{}: lanes still running after the deadline", label));
    for (auto& e : run->errors) add_error(r, e);
    auto t_end = t0;
    for (auto& f : run->finished) t_end = std::max(t_end, f);
    out.seconds = std::chrono::duration<double>(t_end - t0).count();
    out.completed = run->done.load();
    for (double l : run->latency) {
        if (l >= 0) out.latencies_ms.push_back(l);
    }
    out.ids = run->ids;
    std::erase(out.ids, std::string());
    return out;
}

// One host on a fresh (or the user's) database, started; stopped at the end.
// With --http and the OTEL_* variables, it serves /metrics and exports spans as a worker
// does (what those cost is what the run then measures).
struct LocalEngine {
    LocalEngine(const Options& options, const std::string& tag, std::shared_ptr<Registry> registry = make_registry())
        : file(options, tag), db(open_database(options, file.path())) {
        set_host_label("local");
        auto ho = host_options(options, "bench-" + tag);
        if (auto otlp = http::OtlpOptions::from_environment()) {
            exporter = std::make_unique<http::OtlpExporter>(*otlp);
            ho.span_sink = exporter->sink();
        }
        host = std::make_unique<Host>(db, std::move(registry), ho);
        host->start();
        if (!options.http.empty()) {
            server = std::make_unique<http::HttpServer>(http::HttpOptions{options.http, "", options.dashboard ? 4 : 2});
            http::add_host_routes(*server, *host);
            if (options.dashboard) http::add_dashboard_routes(*server, db, http::DashboardOptions{});
            server->start();
            if (options.on_http_started) options.on_http_started(server->port());
        }
    }
    ~LocalEngine() {
        if (server) server->stop();
        if (host) host->stop();
    }
    // Observability attached to the run, for its result line.
    Json observability() const {
        Json j = {{"http", server ? Json(server->port()) : Json()}, {"otlp", exporter != nullptr}};
        if (exporter) {
            auto s = exporter->stats();
            j["spans_exported"] = s.exported;
            j["spans_dropped"] = s.dropped;
            j["spans_failed"] = s.failed;
            j["sampler"] = Sampler::from_environment().describe();  // what the host's clients decide with
        }
        return j;
    }
    DbFile file;
    Database db;
    std::unique_ptr<http::OtlpExporter> exporter;
    std::unique_ptr<Host> host;
    std::unique_ptr<http::HttpServer> server;
};

// Closes a closed-loop workload's result: host stats, verification, common fields.
void finish_closed_loop(Result& r, const Options& options, LocalEngine& e, const std::string& workload, int n,
                        std::int64_t activities, LaneOutcome& out,
                        const std::function<std::string(const InstanceState&)>& check, int untimed = 0) {
    r.line["host_stats"] = host_stats_json(*e.host, e.db);
    r.line["observability"] = e.observability();
    r.line["machine"] = machine_info(e.file);
    auto client = e.host->client();
    std::int64_t duplicates = verify_instances(r, client, out.ids, check);
    // The host counts each completion it committed; more than it was given means an
    // instance completed twice.
    auto completed_by_host = e.host->stats().completed - untimed;
    if (completed_by_host > n) {
        duplicates = std::max<std::int64_t>(duplicates, completed_by_host - n);
        add_error(r, fmt::format("host completion count: the host counted {} completions for {} instances",
                                 completed_by_host, n));
    }
    if (out.completed != n) add_error(r, fmt::format("incomplete: {} of {} instances completed", out.completed, n));
    r.line["cpu_seconds"] = std::round(out.cpu_seconds * 1e4) / 1e4;
    if (out.completed > 0) {
        r.line["cpu_us_per_orchestration"] = std::round(out.cpu_seconds * 1e6 / static_cast<double>(out.completed));
        r.line["context_switches_per_orchestration"] =
            std::round(static_cast<double>(out.context_switches) / static_cast<double>(out.completed) * 10.0) / 10.0;
    }
    fill_common(r, options, workload, n, activities, out.seconds, out.latencies_ms, out.completed, duplicates);
}

}  // namespace

Result run_sequence(const Options& options) {
    const int n = options.instances.value_or(2000), c = options.concurrency.value_or(50), steps = 5;
    Result r;
    LocalEngine e(options, "sequence");
    progress(fmt::format("W1 sequence: {} instances x {} activities, {} in flight, sync={}, db {}", n, steps, c,
                         options.sync, e.file.path()));
    auto deadline = Clock::now() + options.timeout;
    auto check = [&](const InstanceState& s) { return check_sequence_output(s.output, steps); };
    auto out = run_async_lanes(r, e.host->client(), n, c, deadline, "W1 sequence", kSequence, sequence_input(steps),
                               check);
    r.line["concurrency"] = c;
    finish_closed_loop(r, options, e, "sequence", n, static_cast<std::int64_t>(n) * steps, out, check);
    return r;
}

Result run_fanout(const Options& options) {
    const int n = options.instances.value_or(200), c = options.concurrency.value_or(50), width = 20;
    Result r;
    LocalEngine e(options, "fanout");
    progress(fmt::format("W2 fanout: {} instances x {} parallel activities, {} in flight, sync={}, db {}", n, width,
                         c, options.sync, e.file.path()));
    auto deadline = Clock::now() + options.timeout;
    auto check = [&](const InstanceState& s) { return check_fanout_output(s.output, width); };
    auto out = run_async_lanes(r, e.host->client(), n, c, deadline, "W2 fanout", kFanout, fanout_input(width), check);
    r.line["concurrency"] = c;
    r.line["width"] = width;
    finish_closed_loop(r, options, e, "fanout", n, static_cast<std::int64_t>(n) * width, out, check);
    return r;
}

Result run_latency(const Options& options) {
    const int n = options.instances.value_or(200), warmup = 5;
    Result r;
    LocalEngine e(options, "latency");
    progress(fmt::format("W3 latency: {} single-activity instances one at a time (after {} warm-up), sync={}, db {}",
                         n, warmup, options.sync, e.file.path()));
    auto deadline = Clock::now() + options.timeout;
    auto check = [&](const InstanceState& s) { return check_sequence_output(s.output, 1); };
    auto schedule = [&](Client& cl) { return cl.schedule(kSequence, sequence_input(1)); };
    // Warm-up instances prepare statements and fill caches; they are verified, not timed.
    Result warm;
    auto warm_out = run_lanes(warm, e.host->client(), warmup, 1, deadline, "W3 warm-up", schedule, check);
    for (auto& err : warm.errors) add_error(r, "warm-up: " + err);
    auto out = run_lanes(r, e.host->client(), n, 1, deadline, "W3 latency", schedule, check);
    r.line["warmup_instances"] = warmup;
    r.line["mean_ms"] = out.latencies_ms.empty()
                            ? 0.0
                            : std::round(1e6 * out.seconds / static_cast<double>(out.latencies_ms.size())) / 1000.0;
    r.line["max_ms"] = out.latencies_ms.empty() ? 0.0 : *std::max_element(out.latencies_ms.begin(), out.latencies_ms.end());
    finish_closed_loop(r, options, e, "latency", n, n, out, check, static_cast<int>(warm_out.completed));
    return r;
}

Result run_history(const Options& options) {
    std::vector<int> sizes = options.sizes.empty() ? std::vector<int>{10, 100, 1000, 10000} : options.sizes;
    Result r;
    LocalEngine e(options, "history");
    progress(fmt::format("W6 history: one instance per size ({}), sequential activities, sync={}, db {}",
                         fmt::join(sizes, ", "), options.sync, e.file.path()));
    auto deadline = Clock::now() + options.timeout;
    auto client = e.host->client();
    Json us = Json::object(), secs = Json::object();
    std::vector<double> latencies;
    std::vector<std::string> ids;
    double total = 0;
    std::int64_t activities = 0, completed = 0;
    std::vector<std::pair<std::string, int>> checks;
    Json cpu_us = Json::object();
    for (int size : sizes) {
        auto t0 = Clock::now();
        double cpu0 = process_cpu_seconds();
        try {
            auto id = client.schedule(kSequence, sequence_input(size));
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            auto s = client.wait_for_completion(id, std::max(left, std::chrono::milliseconds(1)));
            double dt = seconds_since(t0);
            ids.push_back(id);
            checks.emplace_back(id, size);
            if (auto why = check_sequence_output(s.output, size); !why.empty()) {
                add_error(r, fmt::format("wrong output: {}: {}", id, why));
            }
            ++completed;
            total += dt;
            activities += size;
            latencies.push_back(dt * 1000.0);
            us[std::to_string(size)] = std::round(dt * 1e6 / size * 10.0) / 10.0;
            secs[std::to_string(size)] = std::round(dt * 1e4) / 1e4;
            cpu_us[std::to_string(size)] = std::round((process_cpu_seconds() - cpu0) * 1e7 / size) / 10.0;
            progress(fmt::format("W6 history: {} activities in {:.3f} s ({:.1f} us/activity)", size, dt,
                                 dt * 1e6 / size));
        } catch (const std::exception& ex) {
            add_error(r, fmt::format("instance failed: history size {}: {}", size, ex.what()));
            break;
        }
    }
    r.line["us_per_activity"] = us;
    r.line["seconds_by_size"] = secs;
    r.line["cpu_us_per_activity"] = cpu_us;
    if (sizes.size() >= 2 && us.contains(std::to_string(sizes.front())) && us.contains(std::to_string(sizes.back()))) {
        double first = us[std::to_string(sizes.front())].get<double>();
        double last = us[std::to_string(sizes.back())].get<double>();
        r.line["growth_largest_vs_smallest"] = first > 0 ? std::round(last / first * 100.0) / 100.0 : 0.0;
    }
    r.line["host_stats"] = host_stats_json(*e.host, e.db);
    r.line["observability"] = e.observability();
    r.line["machine"] = machine_info(e.file);
    std::int64_t duplicates = 0;
    for (auto& [id, size] : checks) {
        int steps = size;
        duplicates += verify_instances(r, client, {id},
                                       [steps](const InstanceState& s) { return check_sequence_output(s.output, steps); });
    }
    if (completed != static_cast<std::int64_t>(sizes.size())) {
        add_error(r, fmt::format("incomplete: {} of {} instances completed", completed, sizes.size()));
    }
    fill_common(r, options, "history", static_cast<std::int64_t>(sizes.size()), activities, total, latencies,
                completed, duplicates);
    return r;
}

Result run_remote(const Options& options) {
    const int n = options.instances.value_or(2000), c = options.concurrency.value_or(50), steps = 5;
    Result r;
    auto orchestrations_only = std::make_shared<Registry>(
        make_registry()->filtered([](bool orchestrator, const std::string&) { return orchestrator; }));
    LocalEngine e(options, "remote", orchestrations_only);
    auto deadline = Clock::now() + options.timeout;
    Fleet fleet;
    std::vector<std::string> args{"--role", "worker", "--db", e.file.path(), "--sync", options.sync,
                                  "--host-id", "bench-remote-activities", "--only", "activities"};
    if (options.lease) {
        args.push_back("--lease");
        args.push_back(fmt::format("{}ms", options.lease->count()));
    }
    if (options.verbose) args.push_back("--verbose");
    fleet.spawn("activities", args);
    std::string why;
    if (!fleet.wait_until([](const auto& ws) { return ws[0].ready; }, deadline, &why)) {
        throw Error("the activity worker did not get ready: " + why);
    }
    fleet.send_all("go");
    if (!fleet.wait_until([](const auto& ws) { return ws[0].started; }, deadline, &why)) {
        throw Error("the activity worker did not start its host: " + why);
    }
    progress(fmt::format("W7 remote: {} instances x {} activities on a separate worker process, {} in flight, "
                         "sync={}, db {}",
                         n, steps, c, options.sync, e.file.path()));
    auto check = [&](const InstanceState& s) { return check_sequence_output(s.output, steps); };
    auto out = run_async_lanes(r, e.host->client(), n, c, deadline, "W7 remote", kSequence, sequence_input(steps),
                               check);
    r.line["concurrency"] = c;
    auto finals = fleet.stop_all(Clock::now() + std::chrono::seconds(30));
    if (!finals.empty() && finals[0].final_stats.is_object()) {
        r.line["worker_stats"] = finals[0].final_stats;
        auto activities = finals[0].final_stats.value("activities", std::int64_t{0});
        if (activities < static_cast<std::int64_t>(n) * steps) {
            add_error(r, fmt::format("the activity worker ran {} activities, fewer than the {} scheduled", activities,
                                     static_cast<std::int64_t>(n) * steps));
        }
    } else {
        add_error(r, "the activity worker did not report its final stats");
    }
    if (e.host->stats().activities != 0) {
        add_error(r, fmt::format("the orchestration host ran {} activities itself", e.host->stats().activities));
    }
    finish_closed_loop(r, options, e, "remote", n, static_cast<std::int64_t>(n) * steps, out, check);
    return r;
}

}  // namespace durable::bench
