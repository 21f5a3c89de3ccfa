// `durable history ID`: an instance's history as a readable timeline (or JSON lines), and
// with --follow, live as new events are committed.
#include <ctime>
#include <fmt/format.h>
#include <map>

#include "cli/common.hpp"

namespace durable::cli {
namespace {

struct HistoryArgs {
    std::string id;
    bool json = false, follow = false;
    std::string timeout = "10m";
};

// Renders events one line each; remembers task names so completions can say what finished.
class Timeline {
public:
    void print(const HistoryEntry& h) {
        const Json& e = h.event;
        std::string type = e.value("t", "?");
        std::int64_t ts = e.value("ts", std::int64_t{0});
        if (first_ts_ == 0) first_ts_ = ts;
        std::string label = type;
        if (auto id = e.find("id"); id != e.end() && id->is_number_integer()) {
            label += fmt::format(" #{}", id->get<std::int64_t>());
        }
        fmt::print("{:>5}  {}  {:>9}  {}  {}\n", h.seq, format_clock(ts), format_duration(ts - first_ts_),
                   column(label, 30), describe(type, e));
    }

private:
    std::string describe(const std::string& type, const Json& e) {
        auto id = e.value("id", std::int64_t{-1});
        auto field = [&](const char* key) { return e.contains(key) ? brief_json(e[key], 100) : std::string("null"); };
        std::string name = e.value("name", "");
        if (type == "ExecutionStarted") return fmt::format("{}  input={}", name, field("input"));
        if (type == "TaskScheduled") {
            names_[id] = name;
            return fmt::format("{}  input={}", name, field("input"));
        }
        if (type == "SubOrchestrationCreated") {
            names_[id] = name;
            return fmt::format("{} as {}  input={}", name, e.value("instance", ""), field("input"));
        }
        if (type == "TimerCreated") {
            names_[id] = "timer";
            auto at = e.value("fire_at", std::int64_t{0});
            return fmt::format("fires at {} (after {})", format_clock(at), format_duration(at - e.value("ts", at)));
        }
        if (type == "TaskCompleted" || type == "SubOrchestrationCompleted") {
            return fmt::format("{}  -> {}", names_[id], field("result"));
        }
        if (type == "TaskFailed" || type == "SubOrchestrationFailed") {
            const Json err = e.value("error", Json::object());
            return fmt::format("{}  !! {}: {}", names_[id], err.value("type", "Error"),
                               brief_json(err.value("message", ""), 140));
        }
        if (type == "TimerFired") return "";
        if (type == "EventRaised") return fmt::format("'{}'  data={}", name, field("input"));
        if (type == "EventSent") return fmt::format("'{}' to {}  data={}", name, e.value("instance", ""), field("input"));
        if (type == "ExecutionCompleted") {
            std::string status = e.value("status", "");
            if (status == "Failed") {
                const Json err = e.value("error", Json::object());
                return fmt::format("Failed  {}: {}", err.value("type", "Error"), brief_json(err.value("message", ""), 140));
            }
            return fmt::format("{}  result={}", status, field("result"));
        }
        if (type == "ContinuedAsNew") return fmt::format("input={}", field("input"));
        if (e.contains("reason")) return fmt::format("reason={}", field("reason"));
        return "";
    }

    std::int64_t first_ts_ = 0;
    std::map<std::int64_t, std::string> names_;
};

int run_history(const GlobalOptions& g, const HistoryArgs& a) {
    require_utf8(a.id, "the instance ID");
    auto timeout = parse_duration(a.timeout, "--timeout");
    Client client(open_database(g, true, true));
    auto state = client.get_status(a.id);
    if (!state) {
        throw Failure(fmt::format("no instance '{}' in '{}'; `durable list` shows the instances there", a.id, g.db));
    }
    Timeline timeline;
    auto emit = [&](const HistoryEntry& h) {
        if (a.json) {
            fmt::print("{}\n", Json{{"seq", h.seq}, {"event", h.event}}.dump());
        } else {
            timeline.print(h);
        }
        std::fflush(stdout);
        return true;
    };
    if (!a.json) {
        fmt::print("{} ({}), {}\n", state->id, state->name, to_string(state->status));
        fmt::print("{:>5}  {:<12}  {:>9}  {}  {}\n", "SEQ", "TIME", "ELAPSED", column("EVENT", 30), "DETAILS");
    }
    if (a.follow) {
        if (client.watch(a.id, emit, 0, timeout) == WatchEnd::TimedOut) {
            auto now = client.get_status(a.id);
            fmt::print(stderr, "durable: stopped following '{}' after --timeout {}: it is still {}\n", a.id,
                       format_duration(timeout.count()), now ? to_string(now->status) : "there");
            return kExitTimedOut;
        }
    } else {
        for (const auto& h : client.history(a.id)) emit(h);
    }
    return kExitOk;
}

}  // namespace

void add_history_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<HistoryArgs>();
    auto* sub = app.add_subcommand(
        "history", "Show an instance's history as a timeline (after continue_as_new: the current execution's)");
    sub->add_option("id", a->id, "Instance id")->required();
    sub->add_flag("--json", a->json, "One JSON object per line: {\"seq\": N, \"event\": {...}}");
    sub->add_flag("--follow,-f", a->follow, "Keep printing new events until the instance finishes");
    sub->add_option("--timeout", a->timeout, "With --follow: stop after this long (and exit 3)")->capture_default_str();
    commands.add(sub, [&g, a] { return run_history(g, *a); });
}

}  // namespace durable::cli
