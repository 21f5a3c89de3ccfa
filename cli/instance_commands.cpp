// The subcommands that act on instances: start, status, wait, list, raise, terminate,
// suspend, resume, rewind, restart, purge. Each is a thin layer over durable::Client.
#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

#include "cli/common.hpp"
#include "cli/live_hosts.hpp"
#include "orchestrations/orchestrations.hpp"

namespace durable::cli {
namespace {

void print_state(const InstanceState& s) {
    auto now = now_ms();
    fmt::print("id:          {}\n", s.id);
    fmt::print("name:        {}\n", s.name);
    if (!s.version.empty()) fmt::print("version:     {}\n", s.version);
    fmt::print("status:      {}\n", to_string(s.status));
    fmt::print("created:     {} ({})\n", format_time(s.created_at_ms), format_relative(s.created_at_ms, now));
    fmt::print("updated:     {} ({})\n", format_time(s.updated_at_ms), format_relative(s.updated_at_ms, now));
    if (s.completed_at_ms) {
        fmt::print("completed:   {} (took {})\n", format_time(*s.completed_at_ms),
                   format_duration(*s.completed_at_ms - s.created_at_ms));
    }
    if (s.parent_id) fmt::print("parent:      {}\n", *s.parent_id);
    if (s.lease_owner && !is_terminal(s.status)) {
        fmt::print("lease:       {} (expires {})\n", *s.lease_owner, format_relative(s.lease_expires_at_ms, now));
    }
    fmt::print("input:       {}\n", brief_json(s.input, 400));
    if (!s.custom_status.is_null()) fmt::print("custom:      {}\n", brief_json(s.custom_status, 400));
    if (s.status == Status::Completed || s.status == Status::Terminated) {
        fmt::print("output:      {}\n", brief_json(s.output, 2000));
    }
    if (!s.error.is_null()) {
        fmt::print("error:       {}: {}\n", s.error.value("type", "Error"), s.error.value("message", ""));
    }
}

void print_state(const InstanceState& s, bool json, const std::optional<std::string>& waiting = std::nullopt) {
    if (json) {
        auto j = state_to_json(s);
        if (waiting) j["waiting_for"] = *waiting;
        fmt::print("{}\n", j.dump(2));
    } else {
        print_state(s);
        if (waiting) fmt::print("waiting:     {}\n", *waiting);
    }
}

// Exit code for a finished instance: 0 only when it completed.
int final_code(const InstanceState& s) {
    if (s.status == Status::Completed) return kExitOk;
    if (s.status == Status::Failed) {
        fmt::print(stderr, "durable: error: instance '{}' failed: {}: {}\n", s.id, s.error.value("type", "Error"),
                   s.error.value("message", ""));
    } else {
        fmt::print(stderr, "durable: error: instance '{}' was terminated: {}\n", s.id, brief_json(s.output));
    }
    return kExitFailed;
}

InstanceState require_status(const Client& client, const std::string& id, const std::string& db) {
    require_utf8(id, "the instance ID");
    auto s = client.get_status(id);
    if (!s) {
        throw Failure(fmt::format("no instance '{}' in '{}'; `durable list` shows the instances there", id, db));
    }
    return *s;
}

void check_name(const std::string& name, bool force, const LiveCode& live) {
    auto known = known_orchestrations();
    if (force || live.orchestrations.count(name) || std::find(known.begin(), known.end(), name) != known.end()) return;
    throw UsageError(fmt::format("no orchestration named '{}'; the known ones are: {} (pass --force to schedule it "
                                 "anyway, for workers with their own orchestrations)",
                                 name, fmt::join(known, ", ")));
}

// Waits for `id` to finish and prints it; a wait that runs out of time exits with kExitTimedOut.
int wait_and_print(const Client& client, const std::string& id, std::chrono::milliseconds timeout, bool json) {
    InstanceState s;
    try {
        s = client.wait_for_completion(id, timeout);
    } catch (const Timeout& e) {
        fmt::print(stderr, "durable: error: {}\n", e.what());
        return kExitTimedOut;
    }
    print_state(s, json);
    return final_code(s);
}

struct StartArgs {
    std::string name;
    std::optional<std::string> input, input_file, id, version;
    bool force = false, wait = false, json = false;
    std::string timeout = "5m", if_exists = "return";
};

IfExists parse_if_exists(const std::string& text) {
    if (text == "return") return IfExists::Return;
    if (text == "fail") return IfExists::Fail;
    if (text == "restart") return IfExists::Restart;
    throw UsageError(fmt::format("--if-exists '{}' is not one of return, fail, restart", text));
}

int run_start(const GlobalOptions& g, const StartArgs& a) {
    // Everything the command line alone decides is checked before the file is touched: a
    // usage error never creates a database.
    require_utf8(a.name, "the orchestration NAME");
    if (a.id) {
        if (a.id->empty()) throw UsageError("--id is empty; give an instance id, or leave --id out to get a new one");
        require_utf8(*a.id, "--id");
    }
    auto if_exists = parse_if_exists(a.if_exists);
    auto timeout = parse_duration(a.timeout, "--timeout");
    auto given = read_json_payload(a.input, a.input_file, "--input", "--input-file");
    std::optional<Database> existing;
    LiveCode live;
    if (std::filesystem::exists(g.db)) {
        existing = open_database(g, false);
        live = live_code(*existing);
    }
    check_name(a.name, a.force, live);
    Json input;
    if (given) {
        input = std::move(*given);
    } else {
        input = orchestrations::example_input(a.name);
        if (!input.is_null()) fmt::print(stderr, "no --input given: using the example input {}\n", input.dump());
    }
    Client client(existing ? *existing : open_database(g, false));
    ScheduleOptions options;
    options.instance_id = a.id;
    options.if_exists = if_exists;
    options.version = a.version;
    ScheduleResult r;
    try {
        r = client.schedule_with_result(a.name, input, options);
    } catch (const InstanceExists& e) {
        throw Failure(fmt::format("{} (--if-exists {})", e.what(), a.if_exists));
    } catch (const InvalidInput& e) {
        throw UsageError(e.what());  // the name, id or input given: the command line's fault
    }
    if (!r.created) {
        fmt::print(stderr,
                   "instance '{}' exists already ({}): returning it; the input given was not used "
                   "(--if-exists fail refuses, --if-exists restart starts a finished one anew)\n",
                   r.id, to_string(r.status));
    } else if (r.replaced) {
        fmt::print(stderr, "instance '{}' had finished: started anew (its old history is gone)\n", r.id);
    }
    fmt::print("{}\n", r.id);
    if ((r.created || r.replaced) && !live.runs(a.name, a.version.value_or(""))) {
        fmt::print(stderr, "note: no live host registers '{}'{} yet; the instance waits (Pending) until one that does "
                           "starts ({})\n",
                   a.name, a.version ? fmt::format(" version '{}'", *a.version) : std::string(),
                   live.hosts == 0 ? "no host is running" : fmt::format("{} live host{}", live.hosts,
                                                                        live.hosts == 1 ? "" : "s"));
    }
    if (!a.wait) return kExitOk;
    std::fflush(stdout);
    return wait_and_print(client, r.id, timeout, a.json);
}

struct IdArgs {
    std::string id;
    bool json = false;
    std::string timeout = "5m";
};

int run_status(const GlobalOptions& g, const IdArgs& a) {
    auto db = open_database(g, true, true);
    Client client(db);
    auto s = require_status(client, a.id, g.db);
    print_state(s, a.json, waiting_reason(live_code(db), s));
    return kExitOk;
}

int run_wait(const GlobalOptions& g, const IdArgs& a) {
    auto timeout = parse_duration(a.timeout, "--timeout");
    Client client(open_database(g, true, true));
    require_status(client, a.id, g.db);
    return wait_and_print(client, a.id, timeout, a.json);
}

struct ListArgs {
    std::vector<std::string> statuses;
    std::string name, after;
    int limit = 50;
    bool json = false;
};

int run_list(const GlobalOptions& g, const ListArgs& a) {
    if (a.limit <= 0) throw UsageError(fmt::format("--limit must be at least 1, got {}", a.limit));
    QueryFilter filter;
    filter.statuses = parse_statuses(a.statuses);
    if (!a.name.empty()) filter.name = a.name;
    auto db = open_database(g, true, true);
    Client client(db);
    auto page = client.query(filter, static_cast<std::size_t>(a.limit),
                             a.after.empty() ? std::nullopt : std::optional<std::string>(a.after));
    auto live = live_code(db);
    if (a.json) {
        Json out = Json::array();
        for (const auto& s : page.instances) {
            out.push_back(state_to_json(s));
            if (auto why = waiting_reason(live, s)) out.back()["waiting_for"] = *why;
        }
        fmt::print("{}\n", Json{{"instances", out}, {"next", page.next ? Json(*page.next) : Json()}}.dump(2));
        return kExitOk;
    }
    auto now = now_ms();
    std::size_t id_width = 36;
    for (const auto& s : page.instances) id_width = std::max(id_width, std::min<std::size_t>(s.id.size(), 64));
    fmt::print("{}  {}  {}  {}  {}  {}\n", column("ID", id_width), column("NAME", 16), column("VERSION", 8),
               column("STATUS", 10), column("CREATED", 23), "UPDATED");
    for (const auto& s : page.instances) {
        auto why = waiting_reason(live, s);
        fmt::print("{}  {}  {}  {}  {}  {}{}\n", column(s.id, id_width), column(s.name, 16),
                   column(s.version.empty() ? "-" : s.version, 8), column(to_string(s.status), 10),
                   column(format_time(s.created_at_ms), 23),
                   why ? column(format_relative(s.updated_at_ms, now), 12) : format_relative(s.updated_at_ms, now),
                   why ? "  (" + *why + ")" : std::string());
    }
    fmt::print(stderr, "{} instance{}", page.instances.size(), page.instances.size() == 1 ? "" : "s");
    if (page.next) fmt::print(stderr, "; more with: durable list --after {}", *page.next);
    fmt::print(stderr, "\n");
    return kExitOk;
}

struct RaiseArgs {
    std::string id, event;
    std::optional<std::string> data, data_file;
};

int run_raise(const GlobalOptions& g, const RaiseArgs& a) {
    require_utf8(a.id, "the instance ID");
    if (a.event.empty()) throw UsageError("the EVENT name is empty");
    require_utf8(a.event, "the EVENT name");
    Json data = read_json_payload(a.data, a.data_file, "--data", "--data-file").value_or(Json());
    Client client(open_database(g, true));
    client.raise_event(a.id, a.event, data);
    fmt::print("raised '{}' on {}\n", a.event, a.id);
    return kExitOk;
}

struct ControlArgs {
    std::string id, reason;
    bool no_recursive = false;
};

int run_control(const GlobalOptions& g, const ControlArgs& a, const std::string& what) {
    require_utf8(a.reason, "--reason");
    Client client(open_database(g, true));
    require_status(client, a.id, g.db);
    if (what == "terminate") {
        client.terminate(a.id, a.reason, !a.no_recursive);
        fmt::print("terminating {}\n", a.id);
    } else if (what == "suspend") {
        client.suspend(a.id, a.reason);
        fmt::print("suspending {}\n", a.id);
    } else {
        client.resume(a.id, a.reason);
        fmt::print("resuming {}\n", a.id);
    }
    return kExitOk;
}

struct RewindArgs {
    std::string id, reason;
    bool new_id = false;
};

int run_rewind(const GlobalOptions& g, const RewindArgs& a) {
    require_utf8(a.reason, "--reason");
    Client client(open_database(g, true));
    require_status(client, a.id, g.db);
    try {
        client.rewind(a.id, a.reason);
    } catch (const InvalidInput& e) {
        throw Failure(e.what());
    }
    fmt::print("rewound {}: it runs again from its failure point\n", a.id);
    return kExitOk;
}

int run_restart(const GlobalOptions& g, const RewindArgs& a) {
    Client client(open_database(g, true));
    require_status(client, a.id, g.db);
    RestartOptions options;
    options.new_id = a.new_id;
    std::string id;
    try {
        id = client.restart(a.id, options);
    } catch (const InstanceExists& e) {
        throw Failure(fmt::format("{} (or pass --new-id to start a copy beside it)", e.what()));
    } catch (const InvalidInput& e) {
        throw Failure(e.what());
    }
    fmt::print("{}\n", id);
    return kExitOk;
}

struct PurgeArgs {
    std::string id, older_than;
    std::vector<std::string> statuses;
};

int run_purge(const GlobalOptions& g, const PurgeArgs& a) {
    bool bulk = !a.statuses.empty() || !a.older_than.empty();
    if (!a.id.empty() && bulk) throw UsageError("give either an instance ID or --status / --older-than, not both");
    if (a.id.empty() && !bulk) {
        throw UsageError("say what to purge: an instance ID, or --status S and/or --older-than D "
                         "(e.g. durable purge --status Completed --older-than 7d)");
    }
    if (!a.id.empty()) {
        Client client(open_database(g, true));
        require_status(client, a.id, g.db);
        client.purge(a.id);
        fmt::print("purged {}\n", a.id);
        return kExitOk;
    }
    auto statuses = parse_statuses(a.statuses);
    for (auto s : statuses) {
        if (!is_terminal(s)) {
            throw UsageError(fmt::format("only finished instances can be purged; {} is not a final status (use "
                                         "Completed, Failed or Terminated)",
                                         to_string(s)));
        }
    }
    std::optional<std::chrono::system_clock::time_point> before;
    if (!a.older_than.empty()) before = std::chrono::system_clock::now() - parse_duration(a.older_than, "--older-than");
    Client client(open_database(g, true));
    auto n = client.purge(statuses, before);
    fmt::print("purged {} instance{}\n", n, n == 1 ? "" : "s");
    return kExitOk;
}

}  // namespace

void add_instance_commands(CLI::App& app, GlobalOptions& g, Commands& commands) {
    {
        auto a = std::make_shared<StartArgs>();
        auto* sub = app.add_subcommand("start", "Schedule an orchestration; prints the new instance's id");
        sub->add_option("name", a->name, "Orchestration name (e.g. order_pipeline, word_count, approval)")->required();
        sub->add_option("--input", a->input,
                        "Input as JSON, or - to read it from standard input (default: the example's sample input)");
        sub->add_option("--input-file", a->input_file, "Read the input JSON from this file (for large inputs)");
        sub->add_option("--id", a->id, "Instance id to use (default: a new time-ordered id)");
        sub->add_option("--if-exists", a->if_exists,
                        "When --id exists already: return (it, unchanged), fail, or restart (a finished one, anew)")
            ->capture_default_str();
        sub->add_flag("--wait", a->wait, "Wait for the instance to finish and print it");
        sub->add_option("--timeout", a->timeout, "With --wait: how long to wait (e.g. 30s, 5m; exit 3 when it passes)")
            ->capture_default_str();
        sub->add_flag("--json", a->json, "With --wait: print the final state as JSON");
        sub->add_flag("--force", a->force, "Schedule a name this build does not know");
        sub->add_option("--version", a->version,
                        "Orchestration version to run (default: the newest a live host registers)");
        commands.add(sub, [&g, a] { return run_start(g, *a); });
    }
    {
        auto a = std::make_shared<RewindArgs>();
        auto* sub = app.add_subcommand(
            "rewind", "Put a Failed instance back to work from its failure point (what succeeded is not run again)");
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_option("--reason", a->reason, "Why (recorded in history and the audit log)");
        commands.add(sub, [&g, a] { return run_rewind(g, *a); });
    }
    {
        auto a = std::make_shared<RewindArgs>();
        auto* sub = app.add_subcommand(
            "restart", "Start an instance's orchestration again with the same name, version and input; prints its id");
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_flag("--new-id", a->new_id,
                      "Give the new instance a new id (default: reuse the id, replacing the finished instance)");
        commands.add(sub, [&g, a] { return run_restart(g, *a); });
    }
    {
        auto a = std::make_shared<IdArgs>();
        auto* sub = app.add_subcommand("status", "Show an instance's status, input, output and error");
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] { return run_status(g, *a); });
    }
    {
        auto a = std::make_shared<IdArgs>();
        auto* sub = app.add_subcommand(
            "wait", "Wait until an instance finishes; exit 0 if it completed, 1 if not, 3 if the wait timed out");
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_option("--timeout", a->timeout, "How long to wait (e.g. 30s, 5m)")->capture_default_str();
        sub->add_flag("--json", a->json, "Print the final state as JSON");
        commands.add(sub, [&g, a] { return run_wait(g, *a); });
    }
    {
        auto a = std::make_shared<ListArgs>();
        auto* sub = app.add_subcommand("list", "List instances, oldest first, a page at a time");
        sub->add_option("--status", a->statuses, "Only these statuses (repeat or comma-separate)");
        sub->add_option("--name", a->name, "Only this orchestration");
        sub->add_option("--limit", a->limit, "Instances per page")->capture_default_str();
        sub->add_option("--after", a->after, "Continue after this instance id (from the previous page)");
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] { return run_list(g, *a); });
    }
    {
        auto a = std::make_shared<RaiseArgs>();
        auto* sub = app.add_subcommand("raise", "Raise an external event on an instance");
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_option("event", a->event, "Event name (e.g. approved, rejected, stop)")->required();
        sub->add_option("--data", a->data, "Event payload as JSON, or - to read it from standard input");
        sub->add_option("--data-file", a->data_file, "Read the event payload JSON from this file");
        commands.add(sub, [&g, a] { return run_raise(g, *a); });
    }
    for (const char* what : {"terminate", "suspend", "resume"}) {
        auto a = std::make_shared<ControlArgs>();
        std::string help = std::string(what) == "terminate" ? "End an instance (and its sub-orchestrations) as Terminated"
                           : std::string(what) == "suspend" ? "Pause an instance; events wait until it is resumed"
                                                             : "Resume a suspended instance";
        auto* sub = app.add_subcommand(what, help);
        sub->add_option("id", a->id, "Instance id")->required();
        sub->add_option("--reason", a->reason, "Why (recorded in history and the audit log)");
        if (std::string(what) == "terminate") {
            sub->add_flag("--no-recursive", a->no_recursive, "Leave its sub-orchestrations running");
        }
        commands.add(sub, [&g, a, w = std::string(what)] { return run_control(g, *a, w); });
    }
    {
        auto a = std::make_shared<PurgeArgs>();
        auto* sub = app.add_subcommand("purge", "Delete finished instances and their history");
        sub->add_option("id", a->id, "One instance id");
        sub->add_option("--status", a->statuses, "Finished statuses to purge (Completed, Failed, Terminated)");
        sub->add_option("--older-than", a->older_than, "Only instances that finished longer ago than this (e.g. 7d)");
        commands.add(sub, [&g, a] { return run_purge(g, *a); });
    }
}

}  // namespace durable::cli
