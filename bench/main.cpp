// durable-bench: the benchmark program (workloads W1–W6 of shared/DESIGN.md).
//
// Results go to stdout, one JSON line per workload; progress and logs go to stderr. The
// exit status is 0 when every workload verified its results, 1 when one did not (or
// failed), 2 for a bad command line. `--role worker` is the host process W4 and W5 spawn
// (this same binary); it is not meant to be run by hand.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <string_view>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "bench.hpp"

namespace {

using namespace durable::bench;

// "2s", "500ms", "1.5s" or a bare number of milliseconds.
std::chrono::milliseconds parse_duration(const std::string& text) {
    std::size_t end = 0;
    double v = 0;
    try {
        v = std::stod(text, &end);
    } catch (const std::exception&) {
        throw CLI::ValidationError("--lease", "'" + text + "' is not a duration; write e.g. 2s, 500ms or 2000");
    }
    std::string unit = text.substr(end);
    double ms = unit.empty() || unit == "ms" ? v : unit == "s" ? v * 1000.0 : -1;
    if (ms < 0) throw CLI::ValidationError("--lease", "unknown unit '" + unit + "' in '" + text + "'; use s or ms");
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

void log_to_stderr(bool verbose) {
    // spdlog's default logger writes to stdout, which carries the results here.
    auto logger = spdlog::stderr_color_mt("durable");
    logger->set_level(verbose ? spdlog::level::info : spdlog::level::warn);
    spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"durable-bench: measures the durable runtime on workloads W1-W8, the gRPC sidecar and the dashboard (see bench/README.md)"};
    Options o;
    std::string role = "bench", lease, host_id, exec_log, only;
    std::vector<int> hosts, sizes;
    int instances = 0, concurrency = 0, timeout_s = 600;
    app.add_option("--workload", o.workload,
                   "sequence|fanout|latency|recovery|hosts|history|remote|idle|sidecar|all, or ui-list|ui-sse (run only when named)")
        ->check(CLI::IsMember({"sequence", "fanout", "latency", "recovery", "hosts", "history", "remote", "idle", "sidecar", "ui-list",
                               "ui-sse", "all"}))
        ->capture_default_str();
    app.add_option("--db", o.db, "database to use (kept): a SQLite file, or a PostgreSQL URL (postgresql://user@host:port/db, a database of its own: finished instances there are purged first); default: a fresh temp file per run, removed");
    app.add_option("--sync", o.sync, "full (every commit fsync'd) or normal")
        ->check(CLI::IsMember({"full", "normal"}))
        ->capture_default_str();
    auto* inst_opt = app.add_option("--instances", instances, "instances per run (default per workload)")
                         ->check(CLI::PositiveNumber);
    auto* conc_opt = app.add_option("--concurrency", concurrency, "instances in flight (W1, W2, W5; default 50)")
                         ->check(CLI::PositiveNumber);
    app.add_option("--hosts", hosts, "W5: host counts to run (default 1,2,4); W4: the largest (default 3)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    app.add_option("--lease", lease, "host lease duration, e.g. 2s or 500ms (default 10s; W4: 2s)");
    app.add_option("--sizes", sizes, "W6 history sizes (default 10,100,1000,10000)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    app.add_option("--timeout", timeout_s, "seconds each workload may take before it fails")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_flag("--verbose", o.verbose, "log the runtime's info messages on stderr");
    app.add_option("--http", o.http, "local workloads: serve /metrics, /healthz, /readyz on host:port");
    // The worker role (spawned by W4 / W5).
    app.add_option("--role", role, "bench or worker (internal)")->check(CLI::IsMember({"bench", "worker"}))->group("");
    app.add_option("--host-id", host_id, "worker: host id")->group("");
    app.add_option("--exec-log", exec_log, "worker: activity execution log")->group("");
    app.add_option("--only", only, "worker: 'activities' registers no orchestration (W7)")->group("");
    CLI11_PARSE(app, argc, argv);

    log_to_stderr(o.verbose);
    ::signal(SIGPIPE, SIG_IGN);
    try {
        if (!lease.empty()) o.lease = parse_duration(lease);
    } catch (const CLI::Error& e) {
        return app.exit(e);
    }
    if (*inst_opt) o.instances = instances;
    if (*conc_opt) o.concurrency = concurrency;
    o.hosts = hosts;
    o.sizes = sizes;
    o.timeout = std::chrono::seconds(timeout_s);

    if (role == "worker") {
        try {
            if (!o.db || host_id.empty()) {
                std::fprintf(stderr, "durable-bench worker: --db and --host-id are required\n");
                return 2;
            }
            WorkerOptions w{*o.db, o.sync, host_id, o.lease, std::nullopt};
            if (!exec_log.empty()) w.exec_log = exec_log;
            w.only = only;
            return run_worker(w);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "durable-bench worker %s: %s\n", host_id.c_str(), e.what());
            return 1;
        }
    }

    struct Workload {
        const char* name;
        Result (*run)(const Options&);
    };
    const Workload all[] = {{"sequence", run_sequence}, {"fanout", run_fanout},   {"latency", run_latency},
                            {"recovery", run_recovery}, {"hosts", run_hosts},     {"history", run_history},
                            {"remote", run_remote},     {"idle", run_idle},       {"ui-list", run_ui_list},
                            {"sidecar", run_sidecar},   {"ui-sse", run_ui_sse}};
    {
        // Measures the disk and the machine's load before any workload adds its own.
        DbFile probe(o, "probe");
        auto m = machine_info(probe);
        progress(fmt::format("machine: {} cores, fdatasync p50 {} us, load average {} ({})", m["cores"].get<int>(),
                             m["fsync_p50_us"].get<double>(), m["load_average_1m_at_start"].get<double>(),
                             m["db_fs"].get<std::string>()));
    }
    bool ok = true;
    for (const auto& w : all) {
        if (o.workload != w.name && (o.workload != "all" || std::string_view(w.name).rfind("ui-", 0) == 0)) continue;
        Result r;
        try {
            r = w.run(o);
        } catch (const std::exception& e) {
            r.line["workload"] = w.name;
            r.line["sync"] = o.sync;
            add_error(r, fmt::format("failed: {}", e.what()));
        }
        if (!r.line.contains("workload")) r.line["workload"] = w.name;
        emit_result(r);
        if (!r.ok()) {
            ok = false;
            for (const auto& e : r.errors) progress(fmt::format("{}: {}", w.name, e));
        }
    }
    return ok ? 0 : 1;
}
