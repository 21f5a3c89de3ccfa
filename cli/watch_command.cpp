// `durable watch`: follows every instance's events live, as any process on the database
// commits them, until Ctrl-C / SIGTERM. `durable audit`: reads the audit log.
//
// watch subscribes to the process's event distributor, which one thread feeds from the
// database's change feed; what it prints is in commit order. When it cannot keep up (its
// queue overflows, or the feed was pruned past what it had read) it prints a gap line saying
// which events are missing and that `durable history ID` has them.
//
// The stop signals are blocked and waited for by one thread with sigwait, which closes the
// subscription: no handler, no flag polling.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fmt/format.h>
#include <thread>

#include "cli/common.hpp"

namespace durable::cli {
namespace {

struct WatchArgs {
    std::string instance, name, status;
    bool json = false;
    std::size_t queue = 1024;
    std::string overflow = "drop";
};

std::string event_details(const Json& e) {
    Json rest = Json::object();
    for (auto it = e.begin(); it != e.end(); ++it) {
        if (it.key() != "t" && it.key() != "ts") rest[it.key()] = it.value();
    }
    return rest.empty() ? std::string() : brief_json(rest, 100);
}

int run_watch(const GlobalOptions& g, const WatchArgs& a) {
    std::optional<Status> status;
    if (!a.status.empty()) status = parse_status(a.status);
    if (a.queue == 0) throw UsageError("--queue must be at least 1");
    OverflowPolicy overflow = OverflowPolicy::DropOldest;
    if (a.overflow == "disconnect") {
        overflow = OverflowPolicy::Disconnect;
    } else if (a.overflow != "drop") {
        throw UsageError(fmt::format("--overflow '{}' is not one of drop, disconnect", a.overflow));
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before any thread starts

    auto db = open_database(g, true, true);
    auto sub = db.events()->subscribe(SubscribeOptions{a.instance, std::nullopt, a.queue, overflow});
    std::thread stopper([&stop_signals, sub] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        sub->close();
    });
    // On stderr in every mode: a supervisor (or a test) knows from it that the watch is live.
    fmt::print(stderr, "watching {} (Ctrl-C to stop)\n", g.db);
    std::fflush(stderr);
    std::string status_text = status ? std::string(to_string(*status)) : std::string();
    for (;;) {
        auto item = sub->next(std::chrono::seconds(1));
        if (!item) continue;
        if (auto* e = std::get_if<std::shared_ptr<const WatchEvent>>(&*item)) {
            const WatchEvent& ev = **e;
            if (!a.name.empty() && ev.name != a.name) continue;
            if (status && ev.status != status_text) continue;
            if (a.json) {
                fmt::print("{}\n", Json{{"offset", ev.offset},
                                        {"instance", ev.instance_id},
                                        {"name", ev.name},
                                        {"status", ev.status},
                                        {"seq", ev.seq},
                                        {"event", ev.event}}
                                       .dump());
            } else {
                fmt::print("{}  {}  {}  {:>4}  {}  {}\n", format_clock(ev.event.value("ts", std::int64_t{0})),
                           column(ev.instance_id, 36), column(ev.name, 16), ev.seq,
                           column(ev.event.value("t", "?"), 24), event_details(ev.event));
            }
        } else if (auto* gap = std::get_if<WatchGap>(&*item)) {
            if (a.json) {
                fmt::print("{}\n", Json{{"gap", {{"from_offset", gap->from_offset},
                                                 {"to_offset", gap->to_offset},
                                                 {"reason", gap->reason}}}}
                                       .dump());
            } else {
                fmt::print("GAP  events {}..{} missed: {}; `durable history ID` has them\n", gap->from_offset,
                           gap->to_offset, gap->reason);
            }
        } else {
            break;  // closed: by the signal thread, or the distributor stopped
        }
        std::fflush(stdout);
    }
    std::fflush(stdout);
    pthread_kill(stopper.native_handle(), SIGTERM);  // no-op if it already returned from sigwait
    stopper.join();
    return kExitOk;
}

struct AuditArgs {
    std::string instance;
    int limit = 100;
    bool json = false;
};

int run_audit(const GlobalOptions& g, const AuditArgs& a) {
    if (a.limit < 1) throw UsageError(fmt::format("--limit must be at least 1, got {}", a.limit));
    Client client(open_database(g, true, true));
    std::optional<std::string> instance;
    if (!a.instance.empty()) instance = a.instance;
    auto entries = client.audit_log(instance, a.limit);  // newest first
    if (a.json) {
        Json out = Json::array();
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
            out.push_back({{"at_ms", it->at_ms},
                           {"actor", it->actor},
                           {"action", it->action},
                           {"instance", it->instance_id ? Json(*it->instance_id) : Json()},
                           {"detail", it->detail ? Json(*it->detail) : Json()}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}\n", column("TIME", 23), column("ACTOR", 24), column("ACTION", 12),
               column("INSTANCE", 36), "DETAIL");
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        fmt::print("{}  {}  {}  {}  {}\n", format_time(it->at_ms), column(it->actor, 24), column(it->action, 12),
                   column(it->instance_id.value_or(""), 36), it->detail.value_or(""));
    }
    fmt::print(stderr, "{} entr{} (oldest first; at most --limit, the newest)\n", entries.size(),
               entries.size() == 1 ? "y" : "ies");
    return kExitOk;
}

}  // namespace

void add_watch_commands(CLI::App& app, GlobalOptions& g, Commands& commands) {
    {
        auto a = std::make_shared<WatchArgs>();
        auto* sub = app.add_subcommand("watch", "Follow instances' events live, as any process commits them, until Ctrl-C");
        sub->add_option("--instance", a->instance, "Only this instance");
        sub->add_option("--name", a->name, "Only instances of this orchestration");
        sub->add_option("--status", a->status, "Only events that left their instance in this status");
        sub->add_flag("--json", a->json, "One JSON object per line: an event, or {\"gap\": {...}}");
        sub->add_option("--queue", a->queue, "Events buffered for this watcher before it misses some")
            ->capture_default_str();
        sub->add_option("--overflow", a->overflow, "When the buffer is full: drop (the oldest, reported as a gap) "
                                                   "or disconnect")
            ->capture_default_str();
        commands.add(sub, [&g, a] { return run_watch(g, *a); });
    }
    {
        auto a = std::make_shared<AuditArgs>();
        auto* sub = app.add_subcommand("audit", "Show the audit log: who scheduled, raised, terminated, purged what");
        sub->add_option("--instance", a->instance, "Only entries about this instance");
        sub->add_option("--limit", a->limit, "The newest N entries")->capture_default_str();
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] { return run_audit(g, *a); });
    }
}

}  // namespace durable::cli
