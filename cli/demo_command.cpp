// `durable demo`: the multi-host demo. On a fresh database it starts worker processes,
// schedules a mix of the example orchestrations over a few seconds, SIGKILLs one worker
// midway, answers the approvals and stops the monitors by raising events, prints progress
// every half second (per host: instances finished, leases held; takeovers), and at the end a
// summary. Exit 0 only if every instance reached its expected final state.
//
// The demo learns everything from the database, as any observer could: instance rows (the
// examples put the id of the host that ran their last step into their output), the hosts
// table (leases held) and the lease columns (who held what when a worker was killed).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <set>
#include <thread>

#include "cli/common.hpp"
#include "cli/demo_plan.hpp"
#include "cli/demo_workers.hpp"

namespace durable::cli {
namespace {

using namespace std::chrono_literals;
using demo::Item;
using demo::WorkerProcess;

struct DemoArgs {
    int instances = 300;
    int workers = 3;
    std::string lease = "2s", ramp = "6s", timeout = "120s", approval_timeout = "2s";
    std::uint64_t seed = 1;
    bool fresh = false, no_kill = false;
};

// Empty if `path` is a database an earlier demo made (safe to replace); else why not.
std::string why_not_a_demo_file(const std::string& path) {
    try {
        DatabaseOptions ro;
        ro.read_only = !Database::names_server(path);  // a server database is migrated if new
        Client client(Database::open(path, ro));
        std::optional<std::string> after;
        do {
            auto page = client.query(QueryFilter{}, 1000, after);
            for (const auto& r : page.instances) {
                if (r.id.rfind(demo::kIdPrefix, 0) != 0) {
                    return fmt::format("holds instances the demo did not make (e.g. '{}')", r.id);
                }
            }
            after = page.next;
        } while (after);
        auto now = now_ms();
        char here[256] = {0};
        gethostname(here, sizeof(here) - 1);
        for (const auto& h : client.hosts()) {
            // A recent heartbeat of a process that no longer exists (a worker the last demo
            // killed) does not count.
            bool gone = h.hostname == here && ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH;
            if (!h.stopped_at_ms && now - h.heartbeat_at_ms < 10'000 && !gone) {
                return fmt::format("has a live worker on it ({}, pid {})", h.id, h.pid);
            }
        }
        return {};
    } catch (const std::exception& e) {
        return fmt::format("is not a durable database ({})", e.what());
    }
}

// A PostgreSQL database cannot be deleted like a file: it must hold nothing but what earlier
// demos left, which (all finished) is purged.
void prepare_server_database(const std::string& target) {
    auto why = why_not_a_demo_file(target);
    if (!why.empty()) {
        throw Failure(fmt::format("the database {} {}; the demo needs an empty database or one only earlier demos "
                                  "used",
                                  target, why));
    }
    auto db = Database::open(target);
    Client client(db);
    client.purge({Status::Completed, Status::Failed, Status::Terminated}, std::nullopt);
    QueryFilter left;
    auto rest = client.query(left, 1);
    if (!rest.instances.empty()) {
        throw Failure(fmt::format("the database {} holds unfinished instances of an earlier demo (e.g. '{}'); use "
                                  "an empty database",
                                  target, rest.instances.front().id));
    }
}

void prepare_file(const std::string& path, bool fresh) {
    namespace fs = std::filesystem;
    if (Database::names_server(path)) {
        prepare_server_database(path);
        return;
    }
    if (!fs::exists(path)) return;
    if (!fresh) {
        auto why = why_not_a_demo_file(path);
        if (!why.empty()) {
            throw Failure(fmt::format("'{}' exists and {}; the demo needs a fresh file: pass --fresh to replace it, "
                                      "or --db to use another file",
                                      path, why));
        }
    }
    for (const char* suffix : {"", "-wal", "-shm", "-journal", "-wake"}) {
        std::error_code ec;
        fs::remove(path + suffix, ec);
        if (ec) throw Failure(fmt::format("could not remove '{}{}': {}", path, suffix, ec.message()));
    }
}

// What the database says right now.
struct Snapshot {
    std::map<std::string, InstanceState> states;  // every demo instance, payments included
    std::vector<HostInfo> hosts;
};

Snapshot read_snapshot(const Client& client) {
    Snapshot s;
    std::optional<std::string> after;
    for (;;) {
        auto page = client.query(QueryFilter{}, 1000, after);
        for (auto& st : page.instances) s.states.emplace(st.id, std::move(st));
        if (!page.next) break;
        after = page.next;
    }
    s.hosts = client.hosts();
    return s;
}

std::string finishing_host(const InstanceState& s) {
    if (s.output.is_object()) {
        auto h = s.output.value("host", "");
        if (!h.empty()) return h;
    }
    return "?";
}

class Demo {
public:
    Demo(const GlobalOptions& g, const DemoArgs& a) : g_(g), a_(a) {}

    int run();

private:
    void schedule_due(double elapsed_s);
    void raise_events(const Snapshot& snap);
    void maybe_kill(const Snapshot& snap, double elapsed_s);
    void print_progress(const Snapshot& snap, double elapsed_s);
    int summarize(const Snapshot& snap, double elapsed_s);
    bool all_finished(const Snapshot& snap) const;
    std::size_t finished_items(const Snapshot& snap) const;
    std::size_t taken_over(const Snapshot& snap) const;

    const GlobalOptions& g_;
    const DemoArgs& a_;
    std::chrono::milliseconds lease_{}, ramp_{}, timeout_{};
    std::optional<Client> client_;
    demo::Plan plan_;
    std::size_t scheduled_ = 0;
    std::vector<WorkerProcess> workers_;
    std::set<std::string> raised_;
    std::optional<std::size_t> killed_;        // index into workers_
    double killed_at_s_ = 0;
    std::set<std::string> orphans_;            // non-terminal instances the killed worker held
};

int Demo::run() {
    if (a_.instances < 1) throw UsageError(fmt::format("--instances must be at least 1, got {}", a_.instances));
    int min_workers = a_.no_kill ? 1 : 2;
    if (a_.workers < min_workers || a_.workers > 16) {
        throw UsageError(fmt::format("--workers must be between {} and 16, got {}", min_workers, a_.workers));
    }
    lease_ = parse_duration(a_.lease, "--lease");
    ramp_ = parse_duration(a_.ramp, "--ramp");
    timeout_ = parse_duration(a_.timeout, "--timeout");
    auto approval_timeout = parse_duration(a_.approval_timeout, "--approval-timeout");
    if (lease_ < 200ms) throw UsageError("--lease must be at least 200ms");

    prepare_file(g_.db, a_.fresh);
    auto db = Database::open(g_.db);  // creates and migrates the file before any worker opens it
    client_.emplace(db);
    plan_ = demo::make_plan(a_.instances, a_.seed, approval_timeout);

    fmt::print("durable demo: {} instances on {} worker processes sharing {} (lease {})\n", a_.instances, a_.workers,
               g_.db, format_duration(lease_.count()));
    // A server database has no file name to put the logs beside.
    const std::string logs = Database::names_server(g_.db) ? std::string("durable-demo") : g_.db;
    fmt::print("worker logs: {}.worker-N.log; a worker is killed with SIGKILL midway\n\n", logs);
    for (int i = 1; i <= a_.workers; ++i) {
        workers_.push_back(demo::spawn_worker(g_.db, fmt::format("worker-{}", i), lease_,
                                              fmt::format("{}.worker-{}.log", logs, i)));
    }

    auto started = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
    Snapshot snap;
    int code = kExitFailed;
    try {
        auto next_tick = started;
        for (;;) {
            schedule_due(elapsed());
            snap = read_snapshot(*client_);
            raise_events(snap);
            maybe_kill(snap, elapsed());
            print_progress(snap, elapsed());
            if (scheduled_ == plan_.items.size() && all_finished(snap)) break;
            std::size_t alive = 0;
            for (auto& w : workers_) alive += demo::has_exited(w) ? 0 : 1;
            if (alive == 0) throw Failure("every worker process has exited; see the worker logs");
            if (elapsed() > std::chrono::duration<double>(timeout_).count()) {
                fmt::print("\ntimed out after {}: instances are still running\n", format_duration(timeout_.count()));
                break;
            }
            next_tick += 500ms;
            std::this_thread::sleep_until(next_tick);  // a progress ticker: nothing to wake it early
        }
        snap = read_snapshot(*client_);
        double took = elapsed();
        int forced = demo::stop_workers(workers_, 15s);
        if (forced > 0) fmt::print("{} worker(s) did not stop within 15s of SIGTERM and were killed\n", forced);
        code = summarize(snap, took);
    } catch (...) {
        demo::stop_workers(workers_, 5s);
        throw;
    }
    return code;
}

void Demo::schedule_due(double elapsed_s) {
    double ramp_s = std::chrono::duration<double>(ramp_).count();
    std::size_t due = plan_.items.size();
    if (ramp_s > 0) {
        double share = std::min(1.0, (elapsed_s + 0.5) / ramp_s);
        due = std::min(plan_.items.size(), static_cast<std::size_t>(share * static_cast<double>(due) + 0.999));
    }
    for (; scheduled_ < due; ++scheduled_) {
        const Item& item = plan_.items[scheduled_];
        ScheduleOptions options;
        options.instance_id = item.id;
        client_->schedule(item.name, item.input, options);
    }
}

void Demo::raise_events(const Snapshot& snap) {
    for (std::size_t i = 0; i < scheduled_; ++i) {
        const Item& item = plan_.items[i];
        if (item.action == demo::Action::None || raised_.count(item.id)) continue;
        auto it = snap.states.find(item.id);
        if (it == snap.states.end()) continue;
        auto r = demo::next_raise(item, it->second);
        if (!r) continue;
        try {
            client_->raise_event(item.id, r->event, r->data);
        } catch (const InvalidInput&) {
            // It finished meanwhile; the summary judges the outcome.
        }
        raised_.insert(item.id);
    }
}

void Demo::maybe_kill(const Snapshot& snap, double elapsed_s) {
    if (killed_ || a_.no_kill || workers_.size() < 2) return;
    if (finished_items(snap) * 3 < plan_.items.size()) return;
    // The victim: the live worker holding the most leases, so the takeover shows.
    std::map<std::string, std::int64_t> held;
    for (const auto& h : snap.hosts) held[h.id] = h.leases;
    std::optional<std::size_t> victim;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        if (demo::has_exited(workers_[i])) continue;
        if (!victim || held[workers_[i].host_id] > held[workers_[*victim].host_id]) victim = i;
    }
    if (!victim) return;
    auto& w = workers_[*victim];
    demo::kill_worker(w);
    killed_ = *victim;
    killed_at_s_ = elapsed_s;
    for (const auto& r : client_->leases()) {
        if (r.owner == w.host_id && !is_terminal(r.status)) orphans_.insert(r.instance_id);
    }
    fmt::print("{:6.1f}s  ** SIGKILL {} (pid {}) holding {} leases: other workers take its instances over once "
               "the leases expire (within {})\n",
               elapsed_s, w.host_id, w.pid, orphans_.size(), format_duration(lease_.count()));
}

std::size_t Demo::finished_items(const Snapshot& snap) const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < scheduled_; ++i) {
        auto it = snap.states.find(plan_.items[i].id);
        if (it != snap.states.end() && is_terminal(it->second.status)) ++n;
    }
    return n;
}

bool Demo::all_finished(const Snapshot& snap) const {
    if (finished_items(snap) < plan_.items.size()) return false;
    for (const auto& [id, s] : snap.states) {
        if (!is_terminal(s.status)) return false;  // a payment sub-orchestration
    }
    return true;
}

std::size_t Demo::taken_over(const Snapshot& snap) const {
    if (!killed_) return 0;
    const auto& dead = workers_[*killed_].host_id;
    std::size_t n = 0;
    for (const auto& id : orphans_) {
        auto it = snap.states.find(id);
        if (it == snap.states.end()) continue;
        const auto& s = it->second;
        if (is_terminal(s.status) || (s.lease_owner && *s.lease_owner != dead)) ++n;
    }
    return n;
}

void Demo::print_progress(const Snapshot& snap, double elapsed_s) {
    std::map<std::string, std::size_t> done_by_host;
    std::size_t failed = 0, running = 0;
    for (const auto& [id, s] : snap.states) {
        if (is_terminal(s.status)) {
            ++done_by_host[finishing_host(s)];
            if (s.status != Status::Completed) ++failed;
        } else {
            ++running;
        }
    }
    std::map<std::string, std::int64_t> held;
    for (const auto& h : snap.hosts) held[h.id] = h.leases;
    std::string hosts;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        const auto& w = workers_[i];
        bool dead = killed_ && *killed_ == i;
        hosts += fmt::format(" | {}{} {} done {} held", w.host_id, dead ? " KILLED" : "", done_by_host[w.host_id],
                             dead ? 0 : held[w.host_id]);
    }
    std::string takeovers;
    if (killed_) takeovers = fmt::format(" | taken over {}/{}", taken_over(snap), orphans_.size());
    fmt::print("{:6.1f}s  scheduled {}/{}  finished {}/{}  running {}  failed {}{}{}\n", elapsed_s, scheduled_,
               plan_.items.size(), finished_items(snap), plan_.items.size(), running, failed, hosts, takeovers);
    std::fflush(stdout);
}

int Demo::summarize(const Snapshot& snap, double elapsed_s) {
    std::vector<std::string> problems;
    std::map<std::string, std::map<std::string, std::size_t>> by_name;  // name -> label -> count
    std::map<std::string, std::size_t> totals;
    std::size_t compensated = 0;
    for (const auto& item : plan_.items) {
        auto it = snap.states.find(item.id);
        if (it == snap.states.end()) {
            problems.push_back(fmt::format("{} was never created", item.id));
            continue;
        }
        auto problem = demo::judge(item, it->second);
        if (!problem.empty()) problems.push_back(problem);
        ++totals[item.name];
        ++by_name[item.name][problem.empty() ? item.label : "unexpected: " + demo::outcome_of(it->second)];
        if (item.name == "booking_saga" && demo::outcome_of(it->second) == "compensated") ++compensated;
    }
    std::map<std::string, std::size_t> by_host;
    for (const auto& [id, s] : snap.states) {
        if (is_terminal(s.status)) ++by_host[finishing_host(s)];
        if (s.name == "payment") {
            ++totals["payment (sub-orchestration)"];
            ++by_name["payment (sub-orchestration)"][demo::outcome_of(s)];
            if (s.status != Status::Completed) {
                problems.push_back(fmt::format("{} ended {}, expected Completed", id, to_string(s.status)));
            }
        }
    }

    fmt::print("\n== durable demo summary ==\n");
    fmt::print("{} instances ({} with sub-orchestrations) on {} workers in {:.1f}s\n", plan_.items.size(),
               snap.states.size(), workers_.size(), elapsed_s);
    fmt::print("\nby orchestration:\n");
    for (const auto& [name, labels] : by_name) {
        std::string parts;
        for (const auto& [label, n] : labels) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", n, label);
        fmt::print("  {}  {:>4}  {}\n", column(name, 28), totals[name], parts);
    }
    fmt::print("\nby host (the host that ran the instance's last step):\n");
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        const auto& w = workers_[i];
        std::string note = killed_ && *killed_ == i ? fmt::format("  (SIGKILLed at {:.1f}s)", killed_at_s_) : "";
        fmt::print("  {}  {:>4}{}\n", column(w.host_id, 12), by_host[w.host_id], note);
    }
    for (const auto& [host, n] : by_host) {
        bool known = std::any_of(workers_.begin(), workers_.end(), [&](const auto& w) { return w.host_id == host; });
        if (!known) fmt::print("  {}  {:>4}\n", column(host == "?" ? "(unknown)" : host, 12), n);
    }
    if (killed_) {
        fmt::print("\ntakeovers: {} of the {} unfinished instances {} held were finished by other workers\n",
                   taken_over(snap), orphans_.size(), workers_[*killed_].host_id);
    } else {
        fmt::print("\ntakeovers: none (no worker was killed)\n");
    }
    fmt::print("failed-then-compensated sagas: {}\n", compensated);
    fmt::print("workers: ");
    for (const auto& w : workers_) fmt::print("{} {}; ", w.host_id, demo::describe_exit(w));
    fmt::print("\n");

    if (problems.empty()) {
        fmt::print("\nOK: every instance reached its expected final state in {:.1f}s\n", elapsed_s);
        fmt::print("look around: durable --db {} list; durable --db {} history {}\n", g_.db, g_.db,
                   plan_.items.front().id);
        return kExitOk;
    }
    fmt::print("\nFAILED: {} instance(s) did not reach their expected final state:\n", problems.size());
    for (std::size_t i = 0; i < problems.size() && i < 20; ++i) fmt::print("  {}\n", problems[i]);
    if (problems.size() > 20) fmt::print("  ... and {} more\n", problems.size() - 20);
    return kExitFailed;
}

}  // namespace

void add_demo_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<DemoArgs>();
    auto* sub = app.add_subcommand(
        "demo", "Run the multi-host demo: worker processes, a few hundred instances, one worker SIGKILLed midway");
    sub->add_option("--instances", a->instances, "How many instances to schedule")->capture_default_str();
    sub->add_option("--workers", a->workers, "How many worker processes")->capture_default_str();
    sub->add_option("--lease", a->lease, "The workers' lease duration (takeover after a kill)")->capture_default_str();
    sub->add_option("--ramp", a->ramp, "Spread the scheduling over this long")->capture_default_str();
    sub->add_option("--approval-timeout", a->approval_timeout, "When approvals escalate (and expire after as long)")
        ->capture_default_str();
    sub->add_option("--timeout", a->timeout, "Give up (exit 1) if not finished by then")->capture_default_str();
    sub->add_option("--seed", a->seed, "Seed of the simulated failures and documents")->capture_default_str();
    sub->add_flag("--fresh", a->fresh, "Replace the database file even if the demo did not make it");
    sub->add_flag("--no-kill", a->no_kill, "Do not kill a worker");
    commands.add(sub, [&g, a] { return Demo(g, *a).run(); });
}

}  // namespace durable::cli
