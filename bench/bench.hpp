// bench/bench.hpp — what the parts of durable-bench share: options, the database file a
// run uses, result lines, latency statistics and the verification every workload does.
//
// Invariants:
//  - stdout carries exactly one JSON line per workload (emit_result); everything else
//    (progress, logs) goes to stderr, so `durable-bench ... | jq` works.
//  - Every wait is bounded by Options::timeout; a workload that runs out of time reports
//    it as a verification error instead of hanging.
//  - A workload's result is verified before it is printed (every instance Completed with
//    the expected output, each completed exactly once); a failed check sets "ok": false,
//    lists the problems under "errors", and makes the program exit non-zero.
#pragma once

#include <durable/durable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace durable::bench {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The command line, after defaults for the chosen workload are applied by each workload.
struct Options {
    std::string workload = "all";
    std::optional<std::string> db;             // user-chosen file (kept); empty: fresh temp files
    std::string sync = "full";                 // "full" or "normal"
    std::optional<int> instances, concurrency;
    std::vector<int> hosts;                    // W4: the largest; W5: each count; empty: defaults
    std::optional<std::chrono::milliseconds> lease;
    std::vector<int> sizes;                    // W6 history sizes; empty: 10, 100, 1000, 10000
    std::chrono::seconds timeout{600};         // per workload
    bool verbose = false;
    // Local workloads (W1-W3, W6): serve the host's /metrics on this address (empty: none),
    // and export spans to the OTLP endpoint the OTEL_* variables name (if any).
    std::string http;
    // With `http`: serve the dashboard there too (ui-sse), and call this with the bound port
    // once the server is up, before any instance starts.
    bool dashboard = false;
    std::function<void(int port)> on_http_started;
};

// One workload's outcome: its JSON line and whether verification passed.
struct Result {
    Json line = Json::object();
    std::vector<std::string> errors;
    bool ok() const { return errors.empty(); }
};

// A database for one run: the user's --db (kept), or a fresh temp file removed (with its
// -wal, -shm and any side files registered here) when this object goes away. A PostgreSQL
// --db cannot be made fresh like a file: what earlier runs left there (all finished) is purged
// first, and side files go to the temp dir.
class DbFile {
public:
    DbFile(const Options& options, const std::string& tag);
    ~DbFile();
    DbFile(const DbFile&) = delete;
    DbFile& operator=(const DbFile&) = delete;

    const std::string& path() const { return path_; }
    const std::string& sync() const { return sync_; }
    // A side file next to the database (e.g. an activity execution log), removed with it
    // when the database is temporary.
    std::string side_file(const std::string& suffix);
    // Where a side file with `suffix` would go (not registered for removal).
    std::string side_file_path(const std::string& suffix) const { return side_base_ + suffix; }

private:
    std::string path_;
    std::string sync_;
    std::string side_base_;  // side files are side_base_ + suffix
    bool temporary_ = false;
    std::vector<std::string> side_files_;
};

// Opens `path` with the --sync setting.
Database open_database(const Options& options, const std::string& path);

// Host options for the bench: defaults, with --lease applied when given.
HostOptions host_options(const Options& options, const std::string& host_id);

// Latency statistics in milliseconds.
double percentile(std::vector<double> values, double q);

// Fills the fields every result line has. `latencies_ms` gives p50_ms / p99_ms.
void fill_common(Result& r, const Options& options, const std::string& workload, std::int64_t instances,
                 std::int64_t activities, double seconds, const std::vector<double>& latencies_ms,
                 std::int64_t completed, std::int64_t duplicates);

// Machine facts: cores, CPU model, SQLite version, the file system the database is on, the
// median fdatasync latency there and the load average (both measured at the first call,
// which main makes before any workload runs).
// The machine and the store: cores, CPU, fsync latency of the local disk, load; the store's
// kind, version (SQLite library or PostgreSQL server) and durability setting.
Json machine_info(const DbFile& file);

// A host's counters and timing histograms (means), plus its store's commit statistics.
Json host_stats_json(Host& host, const Database& db);

// The value of metric `name` (no labels) in Prometheus text, if present.
std::optional<double> metric_value(const std::string& text, const std::string& name);

// Checks every instance's final state and history: Completed, output accepted by
// `check_output` (which returns an error text, or empty), exactly one ExecutionCompleted
// event. Returns the number of instances completed more than once; appends problems to
// `r.errors` (at most a few examples of each kind).
std::int64_t verify_instances(Result& r, const Client& client, const std::vector<std::string>& ids,
                              const std::function<std::string(const InstanceState&)>& check_output);

// Records a problem, keeping at most `limit` examples of the same kind.
void add_error(Result& r, const std::string& text, std::size_t limit = 5);

// Prints the result as one JSON line on stdout and flushes it.
void emit_result(const Result& r);

// CPU time (user + system) this process has used so far, in seconds.
double process_cpu_seconds();
// Context switches (voluntary + involuntary) of this process so far: a thread waking
// another costs one; many per orchestration point at wake-up storms.
std::int64_t process_context_switches();

// Seconds since `t0`.
inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Wall-clock milliseconds since the epoch (the clock instance rows use).
std::int64_t wall_ms();

// Prints a progress line on stderr.
void progress(const std::string& line);

// ---- the workloads ----
Result run_sequence(const Options& options);  // W1
Result run_fanout(const Options& options);    // W2
Result run_latency(const Options& options);   // W3
Result run_recovery(const Options& options);  // W4
Result run_hosts(const Options& options);     // W5
Result run_history(const Options& options);   // W6
Result run_remote(const Options& options);    // W7
Result run_idle(const Options& options);      // W8
Result run_ui_list(const Options& options);   // ui-list: the dashboard's instance list on 1M instances
Result run_ui_sse(const Options& options);    // ui-sse: W1 with and without the event stream
Result run_sidecar(const Options& options);   // W1's shape through the gRPC sidecar (sidecar.cpp)

// The worker role: a host process driven over stdin/stdout by W4 and W5.
struct WorkerOptions {
    std::string db, sync = "full", host_id;
    std::optional<std::chrono::milliseconds> lease;
    std::optional<std::string> exec_log;
    std::string only;  // "activities": register no orchestration (W7's activity worker)
};
int run_worker(const WorkerOptions& options);

}  // namespace durable::bench
