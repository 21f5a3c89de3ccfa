// tests/multihost/cluster.hpp — several test_host processes on one database (a SQLite file or
// a PostgreSQL database: ClusterOn<Kind>), and what the multi-host tests look at: instance
// rows, histories, the hosts' activity logs.
//
// The test process owns the database, schedules with a standalone durable::Client and
// inspects through the store's reads and a raw connection of its own. Hosts
// are real processes (tests/programs/test_host.cpp); each writes an activity log
// ("instance task host start|end" per line) that tells how often each activity ran, where.
//
// Waiting on another process's commits has no event to block on, so wait_until looks again
// every few milliseconds; every wait has a deadline.
#pragma once

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <durable/durable.hpp>
#include <fmt/format.h>

#include <csignal>
#include <exception>
#include <mutex>
#include <cstdlib>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/database_access.hpp"
#include "store/store.hpp"
#include "support/process.hpp"
#include "support/store_kinds.hpp"
#include "support/temp_dir.hpp"

namespace durable::test {

struct HostConfig {
    int lease_ms = 1000;
    int poll_ms = 50;
    int activity_ms = 0;  // how long each seq5 step sleeps
    int threads = 4;      // activity threads
    int max_active = 0;   // 0: the host's default
    std::vector<std::string> env;  // extra NAME=value environment entries
    // Names the host registers: "a,b", "none", or empty for all of test_host's.
    std::string orchestrations, activities;
    std::string order_versions;  // "1,2": the versions of `order` it registers (empty: none)
};

struct ActivityRun {
    std::string instance;
    std::int64_t task = 0;
    std::string host, phase;  // phase: "start" or "end"
};

inline std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Looks at `done` every `step` until it is true (true) or `timeout` passes (false).
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

// Keeps every host of a cluster out of write transactions from construction to release() (see
// ClusterOn::block_writes): a host's commits queue up behind it, and a host stopped (SIGSTOP)
// while it is held cannot be holding write locks.
class WriteLock {
public:
    template <class C>
    explicit WriteLock(C& cluster) : release_(cluster.block_writes()) {}
    ~WriteLock() { release(); }
    void release() {
        if (!release_) return;
        auto r = std::move(release_);
        release_ = nullptr;
        try {
            r();
        } catch (const std::exception& e) {
            MESSAGE("releasing the test's write lock: " << e.what());
        }
    }

private:
    std::function<void()> release_;
};

template <class Kind>
class ClusterOn {
public:
    ClusterOn() : path(kind.target()), db(Database::open(path)), client(db) {}

    // Keeps every host out of write transactions until the returned function is called: a
    // host's commits queue up behind it, and a host stopped meanwhile holds no write locks.
    std::function<void()> block_writes() { return kind.block_writes(); }

    ~ClusterOn() {
        // Children first (SIGKILL, bounded), while the temp dir still exists.
        hosts_.clear();
        // DURABLE_KEEP_TEST_FILES=DIR keeps the hosts' logs and the database for a post-mortem.
        if (const char* keep = std::getenv("DURABLE_KEEP_TEST_FILES")) {
            std::error_code ec;
            auto to = std::filesystem::path(keep) / dir.path().filename();
            std::filesystem::create_directories(to, ec);
            std::filesystem::copy(dir.path(), to, std::filesystem::copy_options::recursive, ec);
            MESSAGE("test files kept in " << to.string());
        }
    }

    std::string log_path(const std::string& id) const { return dir.file(id + ".log"); }
    std::string err_path(const std::string& id) const { return dir.file(id + ".err"); }

    // Starts a test_host process and waits (bounded) for its "ready".
    Process& start_host(const std::string& id, const HostConfig& c) {
        std::vector<std::string> args = {"--db",          path,
                                         "--host-id",     id,
                                         "--lease-ms",    std::to_string(c.lease_ms),
                                         "--poll-ms",     std::to_string(c.poll_ms),
                                         "--activity-ms", std::to_string(c.activity_ms),
                                         "--threads",     std::to_string(c.threads),
                                         "--log",         log_path(id)};
        if (c.max_active > 0) {
            args.push_back("--max-active");
            args.push_back(std::to_string(c.max_active));
        }
        if (!c.order_versions.empty()) {
            args.push_back("--order-versions");
            args.push_back(c.order_versions);
        }
        if (!c.orchestrations.empty()) {
            args.push_back("--orchestrations");
            args.push_back(c.orchestrations);
        }
        if (!c.activities.empty()) {
            args.push_back("--activities");
            args.push_back(c.activities);
        }
        auto p = std::make_unique<Process>(std::string(DURABLE_BIN_DIR) + "/test_host", args,
                                           ProcessOptions{err_path(id), c.env});
        bool ready = p->wait_for_line("ready", std::chrono::seconds(20));
        if (!ready) FAIL("host " << id << " did not start; its log:\n" << stderr_of(id));
        auto& ref = *p;
        hosts_[id] = std::move(p);
        return ref;
    }

    Process& host(const std::string& id) { return *hosts_.at(id); }

    struct Stopped {
        std::optional<int> exit_code;
        Json stats;  // HostStats as the host printed them; null if it printed none
    };

    // SIGTERM, then the host's stats line and exit code (bounded).
    Stopped stop_host(const std::string& id, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        auto& p = host(id);
        p.signal(SIGTERM);
        Stopped s;
        if (auto line = p.wait_for_prefix("stats ", timeout)) s.stats = Json::parse(line->substr(6));
        s.exit_code = p.wait(timeout);
        return s;
    }

    // Every host's activity log, in file order per host.
    std::vector<ActivityRun> activity_log() const {
        std::vector<ActivityRun> out;
        for (const auto& [id, p] : hosts_) {
            std::ifstream in(log_path(id));
            std::string line;
            while (std::getline(in, line)) {
                std::istringstream f(line);
                ActivityRun r;
                if (f >> r.instance >> r.task >> r.host >> r.phase) out.push_back(std::move(r));
            }
        }
        return out;
    }

    // How many activity executions started, per (instance, task).
    std::map<std::pair<std::string, std::int64_t>, int> starts() const {
        std::map<std::pair<std::string, std::int64_t>, int> n;
        for (const auto& r : activity_log()) {
            if (r.phase == "start") ++n[{r.instance, r.task}];
        }
        return n;
    }

    // The instances some host took over after another host's lease on them expired (the
    // dispatcher's audit records). Only these may have run an activity more than once.
    std::set<std::string> taken_over() const {
        std::set<std::string> out;
        for (const auto& r : client.audit_log(std::nullopt, 1000000)) {
            if (r.action == "takeover" && r.instance_id) out.insert(*r.instance_id);
        }
        return out;
    }

    std::string stderr_of(const std::string& id) const {
        std::ifstream in(err_path(id));
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    std::map<std::string, std::int64_t> count_by_status() {
        std::map<std::string, std::int64_t> out;
        for (const auto& r : kind.rows("SELECT status, COUNT(*) FROM instances GROUP BY status")) {
            out[r[0]] = std::stoll(r[1]);
        }
        return out;
    }

    std::int64_t count_status(const std::string& status) {
        auto all = count_by_status();
        auto it = all.find(status);
        return it == all.end() ? 0 : it->second;
    }

    // Non-terminal instances whose lease `owner` holds (expired or not).
    std::vector<store::InstanceRow> owned_by(const std::string& owner) {
        std::vector<store::InstanceRow> out;
        for (auto& row : durable::detail::store_of(db)->list_leases(wall_ms())) {
            if (row.lease_owner == owner && !is_terminal(row.status)) out.push_back(std::move(row));
        }
        return out;
    }

    // Lease holders now: host id -> instances held.
    std::map<std::string, std::size_t> leases_by_owner() {
        std::map<std::string, std::size_t> out;
        for (auto& row : durable::detail::store_of(db)->list_leases(wall_ms())) {
            if (row.lease_owner && !is_terminal(row.status)) ++out[*row.lease_owner];
        }
        return out;
    }

    // What is wrong with the histories of `ids`, each expected to have run `tasks` activities
    // to completion: seqs must run 0..n-1, one ExecutionStarted first, one ExecutionCompleted
    // last, each task scheduled once and completed once. Empty when all is well.
    std::vector<std::string> history_problems(const std::vector<std::string>& ids, int tasks) {
        std::vector<std::string> problems;
        for (const auto& id : ids) {
            std::vector<Json> events;
            std::int64_t expect_seq = 0;
            bool gap = false;
            // Ids are generated (hex and dashes): safe to put in the SQL text.
            for (const auto& row : kind.rows("SELECT seq, event FROM history WHERE instance_id = '" + id +
                                             "' ORDER BY seq")) {
                // A row holds the events of one commit, newline-separated, from its seq on.
                if (std::stoll(row[0]) != expect_seq) gap = true;
                std::istringstream lines(row[1]);
                for (std::string line; std::getline(lines, line);) {
                    events.push_back(Json::parse(line));
                    ++expect_seq;
                }
            }
            auto say = [&](const std::string& what) {
                if (problems.size() < 20) problems.push_back(id + ": " + what);
            };
            if (gap) say("history seqs are not 0..n-1");
            if (events.empty()) {
                say("no history");
                continue;
            }
            std::map<std::string, int> types;
            std::set<std::int64_t> scheduled, completed;
            for (const auto& e : events) {
                std::string t = e.value("t", "");
                ++types[t];
                if (t == "TaskScheduled" && !scheduled.insert(e.value("id", -1)).second) {
                    say(fmt::format("task {} scheduled twice", e.value("id", -1)));
                }
                if (t == "TaskCompleted" || t == "TaskFailed") {
                    auto tid = e.value("id", -1);
                    if (!completed.insert(tid).second) say(fmt::format("task {} completed twice", tid));
                    if (!scheduled.count(tid)) say(fmt::format("task {} completed but never scheduled", tid));
                }
            }
            if (events.front().value("t", "") != "ExecutionStarted") say("does not start with ExecutionStarted");
            if (events.back().value("t", "") != "ExecutionCompleted") say("does not end with ExecutionCompleted");
            if (types["ExecutionStarted"] != 1) say(fmt::format("{} ExecutionStarted events", types["ExecutionStarted"]));
            if (types["ExecutionCompleted"] != 1) {
                say(fmt::format("{} ExecutionCompleted events", types["ExecutionCompleted"]));
            }
            if (static_cast<int>(scheduled.size()) != tasks || static_cast<int>(completed.size()) != tasks) {
                say(fmt::format("{} tasks scheduled and {} completed, expected {}", scheduled.size(), completed.size(),
                                tasks));
            }
            if (types["TaskFailed"] > 0) say("a task failed");
        }
        return problems;
    }

    // Schedules `n` instances of `name` from a few threads (their writes share group commits).
    std::vector<std::string> schedule_many(const std::string& name, const Json& input, int n, int threads = 4) {
        std::vector<std::string> ids(static_cast<std::size_t>(n));
        for (auto& id : ids) id = new_instance_id();
        std::vector<std::thread> workers;
        std::mutex mu;
        std::exception_ptr failed;  // the first error a thread gave up on, thrown here after the joins
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                for (int i = t; i < n; i += threads) {
                    // A loaded machine can keep the write lock from a writer past the busy
                    // timeout (StoreError): try again, as a user would; the id makes it safe.
                    for (int attempt = 1;; ++attempt) {
                        try {
                            client.schedule(name, input, ScheduleOptions{ids[static_cast<std::size_t>(i)], std::nullopt});
                            break;
                        } catch (const InstanceExists&) {
                            break;  // an earlier try landed after all
                        } catch (const StoreError&) {
                            if (attempt < 5) continue;
                            std::lock_guard lock(mu);
                            if (!failed) failed = std::current_exception();
                            return;
                        } catch (...) {
                            std::lock_guard lock(mu);
                            if (!failed) failed = std::current_exception();
                            return;
                        }
                    }
                }
            });
        }
        for (auto& w : workers) w.join();
        if (failed) std::rethrow_exception(failed);
        return ids;
    }

    Kind kind;  // the database; made first, dropped last
    TempDir dir;  // the hosts' logs
    std::string path;
    Database db;
    Client client;

private:
    std::map<std::string, std::unique_ptr<Process>> hosts_;
};

using Cluster = ClusterOn<SqliteKind>;

}  // namespace durable::test
