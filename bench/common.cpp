// What the workloads share: database files, result lines, statistics, verification.
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "bench.hpp"

namespace durable::bench {
namespace fs = std::filesystem;

DbFile::DbFile(const Options& options, const std::string& tag) : sync_(options.sync) {
    if (options.db) {
        path_ = *options.db;
        side_base_ = path_;
        if (Database::names_server(path_)) {
            side_base_ = (fs::temp_directory_path() / fmt::format("durable-bench-{}-{}", tag, getpid())).string();
            Client client(open_database(options, path_));
            client.purge({Status::Completed, Status::Failed, Status::Terminated}, std::nullopt);
            if (!client.query(QueryFilter{}, 1).instances.empty()) {
                throw std::runtime_error(fmt::format("{} holds unfinished instances; the bench needs a database of "
                                                     "its own",
                                                     path_));
            }
        }
        return;
    }
    static std::atomic<int> counter{0};
    std::random_device rd;
    auto dir = fs::temp_directory_path();
    path_ = (dir / fmt::format("durable-bench-{}-{}-{}-{:04x}.db", tag, getpid(), counter.fetch_add(1),
                               rd() & 0xffff))
                .string();
    side_base_ = path_;
    temporary_ = true;
}

DbFile::~DbFile() {
    if (!temporary_) return;
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal", "-wake"}) fs::remove(path_ + suffix, ec);
    for (const auto& f : side_files_) fs::remove(f, ec);
}

std::string DbFile::side_file(const std::string& suffix) {
    std::string p = side_base_ + suffix;
    side_files_.push_back(p);
    return p;
}

Database open_database(const Options& options, const std::string& path) {
    DatabaseOptions o;
    o.fsync_every_commit = options.sync == "full";
    return Database::open(path, o);
}

HostOptions host_options(const Options& options, const std::string& host_id) {
    HostOptions o;
    o.host_id = host_id;
    if (options.lease) o.lease_duration = *options.lease;
    return o;
}

double percentile(std::vector<double> values, double q) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    // Nearest rank: the smallest value with at least q of the values at or below it.
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
    rank = std::clamp<std::size_t>(rank, 1, values.size());
    return values[rank - 1];
}

namespace {

double round_to(double v, int digits) {
    double f = std::pow(10.0, digits);
    return std::round(v * f) / f;
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

std::string fs_type(const std::string& path) {
    struct statfs s {};
    auto dir = fs::path(path).parent_path();
    if (dir.empty()) dir = ".";
    if (statfs(dir.c_str(), &s) != 0) return "unknown";
    switch (static_cast<unsigned long>(s.f_type)) {
        case 0xEF53: return "ext4";
        case 0x01021994: return "tmpfs";
        case 0x58465342: return "xfs";
        case 0x9123683E: return "btrfs";
        case 0x794c7630: return "overlayfs";
        default: return fmt::format("0x{:x}", static_cast<unsigned long>(s.f_type));
    }
}

// Median latency of a 4 KiB write + fdatasync in the database's directory: what one
// durable commit costs at least on this disk, right now. Measured once per process.
double fsync_us(const std::string& db_path) {
    static std::once_flag once;
    static double result = -1;
    std::call_once(once, [&] {
        auto dir = fs::path(db_path).parent_path();
        if (dir.empty()) dir = ".";
        auto file = (dir / fmt::format(".durable-bench-fsync-{}", getpid())).string();
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return;
        char block[4096] = {};
        std::vector<double> us;
        for (int i = 0; i < 64; ++i) {
            auto t = Clock::now();
            if (::pwrite(fd, block, sizeof(block), (i % 8) * 4096) < 0 || ::fdatasync(fd) != 0) break;
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
        }
        ::close(fd);
        ::unlink(file.c_str());
        result = round_to(percentile(us, 0.5), 1);
    });
    return result;
}

// The 1-minute load average when first asked (main asks before any workload runs): how
// busy the machine was with other work.
double load_average_at_start() {
    static const double value = [] {
        double l[1] = {0};
        return ::getloadavg(l, 1) == 1 ? round_to(l[0], 2) : -1.0;
    }();
    return value;
}

}  // namespace

void fill_common(Result& r, const Options& options, const std::string& workload, std::int64_t instances,
                 std::int64_t activities, double seconds, const std::vector<double>& latencies_ms,
                 std::int64_t completed, std::int64_t duplicates) {
    auto& j = r.line;
    j["workload"] = workload;
    j["sync"] = options.sync;
    j["instances"] = instances;
    j["activities"] = activities;
    j["seconds"] = round_to(seconds, 4);
    j["orchestrations_per_sec"] = seconds > 0 ? round_to(static_cast<double>(completed) / seconds, 1) : 0.0;
    j["activities_per_sec"] =
        seconds > 0 && instances > 0
            ? round_to(static_cast<double>(activities) * static_cast<double>(completed) /
                           static_cast<double>(instances) / seconds,
                       1)
            : 0.0;
    j["p50_ms"] = round_to(percentile(latencies_ms, 0.50), 3);
    j["p99_ms"] = round_to(percentile(latencies_ms, 0.99), 3);
    j["completed"] = completed;
    j["duplicates"] = duplicates;
}

Json machine_info(const DbFile& file) {
    const bool server = Database::names_server(file.path());
    // A server's disk is measured where it runs; on this machine it shares the temp dir's.
    const std::string local = server ? file.side_file_path(".probe") : file.path();
    Json m{{"cores", std::thread::hardware_concurrency()},
           {"cpu", cpu_model()},
           {"db_fs", server ? std::string("server") : fs_type(local)},
           {"fsync_p50_us", fsync_us(local)},
           {"load_average_1m_at_start", load_average_at_start()}};
    if (server) {
        DatabaseOptions o;
        o.fsync_every_commit = file.sync() == "full";
        auto info = Database::open(file.path(), o).info();
        m["store"] = info.store;
        m["server_version"] = info.version;
        m["durability"] = info.durability;
    } else {
        m["store"] = "sqlite";
        m["sqlite"] = sqlite3_libversion();
    }
    return m;
}

std::optional<double> metric_value(const std::string& text, const std::string& name) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ') {
            try {
                return std::stod(line.substr(name.size() + 1));
            } catch (const std::exception&) {
                return std::nullopt;
            }
        }
    }
    return std::nullopt;
}

namespace {

// Mean of a histogram from its _sum and _count, in microseconds.
double histogram_mean_us(const std::string& text, const std::string& name) {
    auto sum = metric_value(text, name + "_sum");
    auto count = metric_value(text, name + "_count");
    if (!sum || !count || *count <= 0) return 0;
    return round_to(*sum / *count * 1e6, 1);
}

}  // namespace

Json host_stats_json(Host& host, const Database& db) {
    auto s = host.stats();
    std::string text = host.metrics_text();
    auto st = db.stats();
    Json j{{"host", host.id()},
           {"episodes", s.episodes},
           {"activities", s.activities},
           {"completed", s.completed},
           {"failed", s.failed},
           {"claims", s.claims},
           {"takeovers", s.takeovers},
           {"lease_conflicts", s.lease_conflicts},
           {"renewals", s.renewals},
           {"replays", s.replays},
           {"busy_wait_seconds", round_to(metric_value(text, "durable_store_busy_wait_seconds").value_or(0), 4)},
           {"episode_mean_us", histogram_mean_us(text, "durable_episode_seconds")},
           {"commit_mean_us", histogram_mean_us(text, "durable_commit_seconds")},
           {"activity_mean_us", histogram_mean_us(text, "durable_activity_seconds")},
           {"store_commits", st.commits},
           {"store_writes", st.writes},
           {"writes_per_commit", st.commits > 0 ? round_to(static_cast<double>(st.writes) / st.commits, 2) : 0.0},
           {"checkpoints", st.checkpoints}};
    return j;
}

void add_error(Result& r, const std::string& text, std::size_t limit) {
    // Errors of one kind share their first word(s) up to ':'.
    auto kind = text.substr(0, text.find(':'));
    std::size_t same = 0;
    for (const auto& e : r.errors) {
        if (e.compare(0, kind.size(), kind) == 0) ++same;
    }
    if (same < limit) {
        r.errors.push_back(text);
    } else if (same == limit) {
        r.errors.push_back(kind + ": (more)");
    }
}

std::int64_t verify_instances(Result& r, const Client& client, const std::vector<std::string>& ids,
                              const std::function<std::string(const InstanceState&)>& check_output) {
    std::int64_t duplicates = 0;
    for (const auto& id : ids) {
        auto s = client.get_status(id);
        if (!s) {
            add_error(r, fmt::format("missing instance: {} is not in the database", id));
            continue;
        }
        if (s->status != Status::Completed) {
            add_error(r, fmt::format("not completed: {} is {} {}", id, to_string(s->status), s->error.dump()));
            continue;
        }
        if (auto why = check_output(*s); !why.empty()) add_error(r, fmt::format("wrong output: {}: {}", id, why));
        int completions = 0;
        for (const auto& h : client.history(id)) completions += h.event.value("t", "") == "ExecutionCompleted";
        if (completions > 1) ++duplicates;
        if (completions != 1) {
            add_error(r, fmt::format("completion count: {} has {} ExecutionCompleted events in its history", id,
                                     completions));
        }
    }
    return duplicates;
}

void emit_result(const Result& r) {
    // The fields every line has come first, in the documented order; the rest follow
    // alphabetically.
    static const char* const kFirst[] = {"workload", "ok", "sync", "instances", "activities", "seconds",
                                         "orchestrations_per_sec", "activities_per_sec", "p50_ms", "p99_ms",
                                         "completed", "duplicates"};
    Json all = r.line;
    all["ok"] = r.ok();
    if (!r.ok()) all["errors"] = r.errors;
    nlohmann::ordered_json line = nlohmann::ordered_json::object();
    for (const char* key : kFirst) {
        if (auto it = all.find(key); it != all.end()) line[key] = nlohmann::ordered_json(*it);
    }
    for (auto it = all.begin(); it != all.end(); ++it) {
        if (!line.contains(it.key())) line[it.key()] = nlohmann::ordered_json(it.value());
    }
    std::string text = line.dump() + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

double process_cpu_seconds() {
    struct rusage u {};
    ::getrusage(RUSAGE_SELF, &u);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return secs(u.ru_utime) + secs(u.ru_stime);
}

std::int64_t process_context_switches() {
    struct rusage u {};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<std::int64_t>(u.ru_nvcsw) + static_cast<std::int64_t>(u.ru_nivcsw);
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void progress(const std::string& line) {
    static std::mutex mu;
    std::lock_guard lock(mu);
    std::fprintf(stderr, "durable-bench: %s\n", line.c_str());
    std::fflush(stderr);
}

}  // namespace durable::bench
