// The dashboard's workloads (run only when named: `--workload ui-list` or `ui-sse`).
//
// ui-list: a SQLite file with 1,000,000 instances (--instances), then the instance list API
//   (/api/v1/instances through a real HTTP server and client) asked the questions the page
//   asks: the first page, deep keyset pages, by status, by name, by name and status, by id
//   prefix, by time range, oldest first; p50 / p99 per question and over all of them (the
//   target is p99 < 50 ms), and the status counts the page shows beside the list. The rows
//   are made by SQL in one transaction from a few hundred instances the runtime really ran
//   (running 1,000,000 orchestrations would take the benchmark's whole budget): time-ordered
//   ids as the runtime makes them, a mix of statuses and names.
// ui-sse: W1 without and with the dashboard's event stream open (an SSE client reading
//   /api/v1/events), alternating, twice each; the slowdown of the best runs (target <= 5%) and
//   whether the stream kept up (every instance's completion seen, no gap or refetch).
#include <httplib.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <durable/dashboard.hpp>
#include <durable/http.hpp>
#include <fmt/format.h>
#include <random>
#include <set>
#include <thread>

#include "bench.hpp"
#include "orchestrations.hpp"

namespace durable::bench {
namespace {

void exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        throw std::runtime_error(fmt::format("ui-list fill: {}: {}", msg, sql.substr(0, 80)));
    }
}

// Filled instances are created one every kSpacingMs: 1,000,000 of them span about a day, as a
// dashboard's database that keeps a day of history would.
constexpr std::int64_t kSpacingMs = 86;

// The id of filled row i: time-ordered like the runtime's UUIDv7 ids (48-bit ms, then a
// counter), so rows go in at the end of the primary key.
std::string fill_id(std::int64_t t0_ms, std::int64_t i) {
    std::int64_t ms = t0_ms + i * kSpacingMs;
    return fmt::format("{:08x}-{:04x}-7000-8000-{:012x}", (ms >> 16) & 0xffffffff, ms & 0xffff, i);
}

// A well-mixed number for row i, so that a row's name and status are independent.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct Stat {
    std::vector<double> ms;
};

}  // namespace

Result run_ui_list(const Options& options) {
    const std::int64_t n = options.instances.value_or(1'000'000);
    Result r;
    DbFile file(options, "ui-list");
    if (Database::names_server(file.path())) {
        add_error(r, "ui-list fills a SQLite file; give no --db or a file path");
        return r;
    }
    progress(fmt::format("ui-list: {} instances, then the instance list API; db {}", n, file.path()));
    const std::int64_t t0_ms = wall_ms() - n * kSpacingMs - 60'000;
    {
        // A few real instances first: the file's schema and rows as the runtime writes them.
        Database db = open_database(options, file.path());
        set_host_label("local");
        Host host(db, make_registry(), host_options(options, "bench-ui-list"));
        host.start();
        auto c = host.client();
        std::vector<std::string> ids;
        for (int i = 0; i < 200; ++i) ids.push_back(c.schedule(kSequence, sequence_input(2)));
        for (const auto& id : ids) c.wait_for_completion(id, std::chrono::minutes(2));
        host.stop();
    }
    auto fill_start = Clock::now();
    {
        sqlite3* raw = nullptr;
        if (sqlite3_open(file.path().c_str(), &raw) != SQLITE_OK) throw std::runtime_error("ui-list: cannot open the file");
        std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
        exec(raw, "PRAGMA busy_timeout = 10000");
        exec(raw, "PRAGMA synchronous = OFF");  // setup only: the measured reads do not depend on it
        exec(raw, "BEGIN IMMEDIATE");
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(raw,
                           "INSERT INTO instances (id, name, status, execution_id, input, output, error, custom_status, "
                           "created_at, updated_at, completed_at) VALUES (?1, ?2, ?3, ?1, '{\"steps\":5}', ?4, ?5, NULL, "
                           "?6, ?7, ?8)",
                           -1, &st, nullptr);
        std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(st, &sqlite3_finalize);
        static const char* names[] = {"sequence", "sequence", "sequence", "sequence", "sequence", "sequence",
                                      "fanout",   "fanout",   "fanout",   "approval"};
        for (std::int64_t i = 0; i < n; ++i) {
            auto id = fill_id(t0_ms, i);
            const auto h = mix(static_cast<std::uint64_t>(i));
            int k = static_cast<int>(h % 100);
            const char* status = k < 90   ? "Completed"
                                 : k < 93 ? "Failed"
                                 : k < 96 ? "Running"
                                 : k < 98 ? "Pending"
                                 : k < 99 ? "Suspended"
                                          : "Terminated";
            bool final_status = k < 93 || k >= 99;
            std::int64_t created = t0_ms + i * kSpacingMs;
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, id.c_str(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, names[(h >> 32) % 10], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
            if (k < 90) {
                sqlite3_bind_text(st, 4, "{\"result\":[1,2,3,4,5]}", -1, SQLITE_STATIC);
            } else {
                sqlite3_bind_null(st, 4);
            }
            if (k >= 90 && k < 93) {
                sqlite3_bind_text(st, 5, "{\"type\":\"TaskFailed\",\"message\":\"boom\"}", -1, SQLITE_STATIC);
            } else {
                sqlite3_bind_null(st, 5);
            }
            sqlite3_bind_int64(st, 6, created);
            sqlite3_bind_int64(st, 7, created + 40);
            if (final_status) {
                sqlite3_bind_int64(st, 8, created + 40);
            } else {
                sqlite3_bind_null(st, 8);
            }
            if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(std::string("ui-list insert: ") + sqlite3_errmsg(raw));
            if (i > 0 && i % 200'000 == 0) progress(fmt::format("ui-list: {} rows", i));
        }
        exec(raw, "COMMIT");
        exec(raw, "ANALYZE");  // as a long-lived database has statistics (the runtime runs optimize)
    }
    const double fill_s = seconds_since(fill_start);
    progress(fmt::format("ui-list: filled in {:.1f} s; querying", fill_s));

    Database db = open_database(options, file.path());
    http::HttpServer server(http::HttpOptions{"127.0.0.1:0", "", 4});
    http::add_dashboard_routes(server, db, http::DashboardOptions{});
    server.start();
    httplib::Client cli("127.0.0.1", server.port());
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);
    cli.set_read_timeout(60, 0);

    std::mt19937_64 rng(42);
    auto random_id = [&] { return fill_id(t0_ms, static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n))); };
    auto random_ms = [&] { return t0_ms + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n)) * kSpacingMs; };
    const std::int64_t window_ms = 10 * 60'000;  // the time-range question asks for ten minutes
    struct Question {
        const char* name;
        std::function<std::string()> path;
        bool expect_full;  // a full page of 50 expected (the fill guarantees it)
    };
    const std::vector<Question> questions = {
        {"first_page", [] { return std::string("/api/v1/instances?limit=50"); }, true},
        {"deep_page", [&] { return "/api/v1/instances?limit=50&after=" + random_id(); }, false},
        {"oldest_first", [] { return std::string("/api/v1/instances?limit=50&order=asc"); }, true},
        {"status_failed", [] { return std::string("/api/v1/instances?limit=50&status=Failed"); }, true},
        {"status_running_deep", [&] { return "/api/v1/instances?limit=50&status=Running,Pending&after=" + random_id(); }, false},
        {"name", [] { return std::string("/api/v1/instances?limit=50&name=fanout"); }, true},
        {"name_and_status", [] { return std::string("/api/v1/instances?limit=50&name=approval&status=Failed"); }, true},
        {"name_and_two_statuses", [] { return std::string("/api/v1/instances?limit=50&name=approval&status=Terminated,Suspended"); }, false},
        {"name_and_status_none", [] { return std::string("/api/v1/instances?limit=50&name=nothing-by-that-name&status=Failed"); }, false},
        {"id_prefix", [&] { return "/api/v1/instances?limit=50&prefix=" + random_id().substr(0, 11); }, false},
        {"time_range", [&] {
             auto from = random_ms();
             return fmt::format("/api/v1/instances?limit=50&from={}&to={}", from, from + window_ms);
         }, false},
    };
    const int rounds = 100;
    std::map<std::string, Stat> stats;
    std::vector<double> all;
    for (int round = 0; round < rounds + 5; ++round) {  // five warm-up rounds, not counted
        for (const auto& q : questions) {
            auto path = q.path();
            auto t = Clock::now();
            auto res = cli.Get(path.c_str());
            double ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
            if (!res || res->status != 200) {
                add_error(r, fmt::format("{} answered {}", path, res ? std::to_string(res->status) : "nothing"));
                continue;
            }
            if (q.expect_full) {
                auto j = Json::parse(res->body);
                if (j["instances"].size() != 50) add_error(r, fmt::format("{}: {} rows, not 50", path, j["instances"].size()));
            }
            if (round < 5) continue;
            stats[q.name].ms.push_back(ms);
            all.push_back(ms);
        }
    }
    std::vector<double> counts_ms;
    for (int i = 0; i < 20; ++i) {
        auto t = Clock::now();
        auto res = cli.Get("/api/v1/counts");
        counts_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        if (!res || res->status != 200) add_error(r, "/api/v1/counts failed");
        if (i == 0 && res && res->status == 200) {
            auto total = Json::parse(res->body)["total"].get<std::int64_t>();
            if (total != n + 200) add_error(r, fmt::format("counts: total {} (expected {})", total, n + 200));
        }
    }
    server.stop();

    auto round_ms = [](double v) { return std::round(v * 100.0) / 100.0; };
    Json per = Json::object();
    for (auto& [name, s] : stats) {
        per[name] = {{"p50_ms", round_ms(percentile(s.ms, 0.5))},
                     {"p99_ms", round_ms(percentile(s.ms, 0.99))},
                     {"max_ms", round_ms(*std::max_element(s.ms.begin(), s.ms.end()))}};
    }
    const double p99 = all.empty() ? 0.0 : percentile(all, 0.99);
    r.line["workload"] = "ui-list";
    r.line["sync"] = options.sync;
    r.line["instances"] = n + 200;
    r.line["fill_seconds"] = round_ms(fill_s);
    r.line["fill_spacing_ms"] = kSpacingMs;
    r.line["time_range_window_ms"] = window_ms;
    r.line["requests"] = all.size();
    r.line["list_p50_ms"] = all.empty() ? 0.0 : round_ms(percentile(all, 0.5));
    r.line["list_p99_ms"] = round_ms(p99);
    r.line["list_target_p99_ms"] = 50;
    r.line["questions"] = per;
    r.line["counts_p50_ms"] = round_ms(percentile(counts_ms, 0.5));
    r.line["counts_p99_ms"] = round_ms(percentile(counts_ms, 0.99));
    r.line["machine"] = machine_info(file);
    if (p99 >= 50.0) add_error(r, fmt::format("instance list p99 {:.1f} ms is over the 50 ms target", p99));
    return r;
}

namespace {

// An SSE client on the dashboard of a W1 run: counts events and completions as they arrive.
class StreamReader {
public:
    explicit StreamReader(int port) : port_(port) { thread_ = std::thread([this] { run(); }); }
    ~StreamReader() { finish(); }
    // Waits (bounded) until the stream has answered, so the run's first commits are seen.
    bool wait_connected(std::chrono::milliseconds limit) {
        auto deadline = Clock::now() + limit;
        while (!connected_ && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return connected_;
    }
    // Ends the stream (the run's server ending it is the normal way) and joins.
    void finish() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::int64_t messages = 0, events = 0, refetches = 0, completed = 0;  // read after finish()

private:
    void run() {
        httplib::Client cli("127.0.0.1", port_);
        cli.set_read_timeout(5, 0);
        std::string buffer, event;
        cli.Get("/api/v1/events", [&](const char* data, std::size_t len) {
            connected_ = true;
            buffer.append(data, len);
            std::size_t nl;
            while ((nl = buffer.find('\n')) != std::string::npos) {
                std::string line = buffer.substr(0, nl);
                buffer.erase(0, nl + 1);
                if (line.rfind("event: ", 0) == 0) event = line.substr(7);
                if (line.rfind("data: ", 0) != 0) continue;
                if (event == "refetch") ++refetches;
                if (event != "commit") continue;
                // Counted by looking for the fields, not by parsing: the reader shares the
                // process (and its CPU figures) with the host being measured.
                ++messages;
                for (std::size_t at = line.find("\"instance\":"); at != std::string::npos;
                     at = line.find("\"instance\":", at + 1)) {
                    ++events;
                }
                for (std::size_t at = line.find("\"t\":\"ExecutionCompleted\""); at != std::string::npos;
                     at = line.find("\"t\":\"ExecutionCompleted\"", at + 1)) {
                    ++completed;
                }
            }
            return !stop_;
        });
    }
    int port_;
    std::atomic<bool> stop_{false}, connected_{false};
    std::thread thread_;
};

}  // namespace

Result run_ui_sse(const Options& options) {
    Result r;
    const int n = options.instances.value_or(2000);
    Json runs = Json::array();
    double best_plain = 0, best_sse = 0;
    std::vector<double> cpu_plain, cpu_sse;  // CPU per orchestration: steadier than throughput on a shared machine
    for (int round = 0; round < 2; ++round) {
        for (bool sse : {false, true}) {
            Options o = options;
            o.instances = n;
            std::unique_ptr<StreamReader> reader;
            if (sse) {
                o.http = "127.0.0.1:0";
                o.dashboard = true;
                o.on_http_started = [&reader, &r](int port) {
                    reader = std::make_unique<StreamReader>(port);
                    if (!reader->wait_connected(std::chrono::seconds(10))) add_error(r, "the event stream did not answer");
                };
            }
            progress(fmt::format("ui-sse: round {}, W1 {} the event stream", round + 1, sse ? "with" : "without"));
            auto w1 = run_sequence(o);
            double rate = w1.line.value("orchestrations_per_sec", 0.0);
            for (auto& e : w1.errors) add_error(r, "W1: " + e);
            double cpu_us = w1.line.value("cpu_us_per_orchestration", 0.0);
            Json run = {{"sse", sse}, {"orchestrations_per_sec", rate}, {"cpu_us_per_orchestration", cpu_us}};
            (sse ? cpu_sse : cpu_plain).push_back(cpu_us);
            if (reader) {
                reader->finish();  // the run's server has ended the stream
                run["stream_messages"] = reader->messages;
                run["stream_events"] = reader->events;
                run["stream_refetches"] = reader->refetches;
                run["stream_completions_seen"] = reader->completed;
                // Kept up: every instance's completion arrived on the stream, with no gap.
                bool kept_up = reader->completed == n && reader->refetches == 0;
                run["stream_kept_up"] = kept_up;
                if (!kept_up) {
                    add_error(r, fmt::format("the stream saw {} of {} completions, {} refetches", reader->completed,
                                             n, reader->refetches));
                }
            }
            (sse ? best_sse : best_plain) = std::max(sse ? best_sse : best_plain, rate);
            runs.push_back(run);
        }
    }
    r.line["workload"] = "ui-sse";
    r.line["sync"] = options.sync;
    r.line["instances"] = n;
    r.line["runs"] = runs;
    r.line["best_plain_orchestrations_per_sec"] = best_plain;
    r.line["best_sse_orchestrations_per_sec"] = best_sse;
    double slowdown = best_plain > 0 ? (best_plain - best_sse) / best_plain * 100.0 : 0.0;
    r.line["slowdown_pct"] = std::round(slowdown * 10.0) / 10.0;
    r.line["target_slowdown_pct"] = 5;
    const double cpu_p = *std::min_element(cpu_plain.begin(), cpu_plain.end());
    const double cpu_s = *std::min_element(cpu_sse.begin(), cpu_sse.end());
    r.line["best_plain_cpu_us_per_orchestration"] = cpu_p;
    r.line["best_sse_cpu_us_per_orchestration"] = cpu_s;
    r.line["cpu_overhead_pct"] = cpu_p > 0 ? std::round((cpu_s - cpu_p) / cpu_p * 1000.0) / 10.0 : 0.0;
    return r;
}

}  // namespace durable::bench
