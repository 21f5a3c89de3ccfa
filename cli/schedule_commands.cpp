// `durable schedule create|list|get|pause|resume|trigger|delete`: recurring schedules (cron,
// UTC), a thin layer over durable::Client. Times are printed in UTC, as cron reads them.
#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

#include "cli/common.hpp"
#include "cli/live_hosts.hpp"
#include "orchestrations/orchestrations.hpp"

namespace durable::cli {
namespace {

struct ScheduleArgs {
    std::string id, cron, orchestration, overlap = "skip", catchup_window = "1h", jitter = "0s", reason;
    std::optional<std::string> input, input_file;
    bool paused = false, force = false, json = false;
};

std::string utc_or_dash(const std::optional<std::int64_t>& ms) { return ms ? format_utc(*ms) : "-"; }

Json info_to_json(const ScheduleInfo& s) {
    auto opt = [](const auto& v) { return v ? Json(*v) : Json(); };
    return Json{{"id", s.spec.id},
                {"cron", s.spec.cron},
                {"orchestration", s.spec.orchestration},
                {"input", s.spec.input},
                {"overlap", to_string(s.spec.overlap)},
                {"catchup_window_ms", s.spec.catchup_window.count()},
                {"jitter_ms", s.spec.jitter.count()},
                {"paused", s.paused},
                {"note", opt(s.note)},
                {"next_fire", s.next_fire_ms ? Json(format_utc(*s.next_fire_ms)) : Json()},
                {"last_fire", s.last_fire_ms ? Json(format_utc(*s.last_fire_ms)) : Json()},
                {"last_instance_id", opt(s.last_instance_id)},
                {"buffered_tick", s.buffered_tick_ms ? Json(format_utc(*s.buffered_tick_ms)) : Json()},
                {"fired", s.fired},
                {"missed", s.missed},
                {"skipped", s.skipped},
                {"created_at_ms", s.created_at_ms},
                {"updated_at_ms", s.updated_at_ms}};
}

void print_info(const ScheduleInfo& s, bool json) {
    if (json) {
        fmt::print("{}\n", info_to_json(s).dump(2));
        return;
    }
    fmt::print("id:             {}\n", s.spec.id);
    fmt::print("cron:           {} (UTC)\n", s.spec.cron);
    fmt::print("orchestration:  {}\n", s.spec.orchestration);
    fmt::print("input:          {}\n", brief_json(s.spec.input, 400));
    fmt::print("overlap:        {}\n", to_string(s.spec.overlap));
    fmt::print("catch-up:       {}\n", format_duration(s.spec.catchup_window.count()));
    fmt::print("jitter:         {}\n", format_duration(s.spec.jitter.count()));
    fmt::print("state:          {}{}\n", s.paused ? "paused" : "active", s.note ? " (" + *s.note + ")" : "");
    fmt::print("next fire:      {}\n", utc_or_dash(s.next_fire_ms));
    fmt::print("last fire:      {}\n", utc_or_dash(s.last_fire_ms));
    fmt::print("last instance:  {}\n", s.last_instance_id.value_or("-"));
    if (s.buffered_tick_ms) fmt::print("buffered tick:  {}\n", format_utc(*s.buffered_tick_ms));
    fmt::print("fired:          {}\n", s.fired);
    fmt::print("missed:         {} (older than the catch-up window)\n", s.missed);
    fmt::print("skipped:        {} (by the overlap policy)\n", s.skipped);
}

Overlap parse_overlap(const std::string& text) {
    if (auto o = overlap_from_string(text)) return *o;
    throw UsageError(fmt::format("--overlap '{}' is not one of skip, buffer_one, allow_all", text));
}

// The schedule commands other than create act on an existing schedule of an existing database.
Client existing_client(const GlobalOptions& g, const std::string& id) {
    require_utf8(id, "the schedule ID");
    return Client(open_database(g, true));
}

ScheduleInfo require_schedule(const Client& c, const std::string& id, const GlobalOptions& g) {
    auto s = c.get_schedule(id);
    if (!s) throw Failure(fmt::format("no schedule '{}' in '{}'; `durable schedule list` shows the schedules there", id, g.db));
    return *s;
}

int run_create(const GlobalOptions& g, const ScheduleArgs& a) {
    // The command line is checked whole before the database is touched.
    require_utf8(a.id, "the schedule ID");
    require_utf8(a.orchestration, "--orchestration");
    if (a.id.empty()) throw UsageError("the schedule ID is empty");
    try {
        CronExpression::parse(a.cron);
    } catch (const InvalidInput& e) {
        throw UsageError(fmt::format("--cron: {}", e.what()));
    }
    ScheduleSpec spec;
    spec.id = a.id;
    spec.cron = a.cron;
    spec.orchestration = a.orchestration;
    spec.overlap = parse_overlap(a.overlap);
    spec.catchup_window = parse_duration(a.catchup_window, "--catchup-window");
    spec.jitter = parse_duration(a.jitter, "--jitter");
    spec.paused = a.paused;
    if (auto given = read_json_payload(a.input, a.input_file, "--input", "--input-file")) {
        spec.input = std::move(*given);
    } else {
        spec.input = orchestrations::example_input(a.orchestration);
        if (!spec.input.is_null()) fmt::print(stderr, "no --input given: using the example input {}\n", spec.input.dump());
    }
    std::optional<Database> db;
    LiveCode live;
    if (Database::names_server(g.db) || std::filesystem::exists(g.db)) {
        db = open_database(g, false);
        live = live_code(*db);
    }
    auto known = known_orchestrations();
    if (!a.force && !live.orchestrations.count(a.orchestration) &&
        std::find(known.begin(), known.end(), a.orchestration) == known.end()) {
        throw UsageError(fmt::format("no orchestration named '{}'; the known ones are: {} (pass --force to schedule "
                                     "it anyway, for workers with their own orchestrations)",
                                     a.orchestration, fmt::join(known, ", ")));
    }
    Client client(db ? *db : open_database(g, false));
    ScheduleInfo info;
    try {
        info = client.create_schedule(spec);
    } catch (const InvalidInput& e) {
        throw UsageError(e.what());
    }
    print_info(info, a.json);
    if (live.hosts == 0 && !a.json) {
        fmt::print(stderr, "note: no host is running on this database; ticks fire once one does (`durable worker`), "
                           "and those late by more than the catch-up window are skipped\n");
    }
    return kExitOk;
}

int run_list(const GlobalOptions& g, const ScheduleArgs& a) {
    Client client(open_database(g, true, true));
    auto all = client.list_schedules();
    if (a.json) {
        auto arr = Json::array();
        for (const auto& s : all) arr.push_back(info_to_json(s));
        fmt::print("{}\n", arr.dump(2));
        return kExitOk;
    }
    if (all.empty()) {
        fmt::print("no schedules in '{}' (create one with `durable schedule create`)\n", g.db);
        return kExitOk;
    }
    fmt::print("{} {} {} {} {} {} {} {} {}\n", column("ID", 20), column("CRON", 16), column("ORCHESTRATION", 14),
               column("OVERLAP", 10), column("STATE", 7), column("NEXT FIRE (UTC)", 21), column("FIRED", 6),
               column("MISSED", 6), "SKIPPED");
    for (const auto& s : all) {
        fmt::print("{} {} {} {} {} {} {} {} {}\n", column(s.spec.id, 20), column(s.spec.cron, 16),
                   column(s.spec.orchestration, 14), column(to_string(s.spec.overlap), 10),
                   column(s.paused ? "paused" : "active", 7), column(utc_or_dash(s.next_fire_ms), 21),
                   column(std::to_string(s.fired), 6), column(std::to_string(s.missed), 6), s.skipped);
    }
    return kExitOk;
}

}  // namespace

void add_schedule_commands(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto* group = app.add_subcommand(
        "schedule", "Recurring schedules: a cron expression (UTC) that starts an orchestration; the hosts fire them");
    group->require_subcommand(1);
    group->fallthrough();
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand(
            "create", "Create a schedule. Example: durable schedule create nightly --cron '0 2 * * MON-FRI' "
                      "--orchestration order_pipeline --input-file order.json");
        sub->add_option("ID", a->id, "The schedule's id; each tick's instance is ID@<tick time, UTC>")->required();
        sub->add_option("--cron", a->cron,
                        "Five fields, UTC: minute hour day-of-month month day-of-week (*, lists, ranges, steps, "
                        "JAN-DEC, SUN-SAT; @hourly, @daily, @weekly, @monthly, @yearly)")
            ->required();
        sub->add_option("--orchestration", a->orchestration, "The orchestration each tick starts")->required();
        sub->add_option("--input", a->input, "Its input, as JSON ('-' reads standard input)");
        sub->add_option("--input-file", a->input_file, "Its input, from a JSON file");
        sub->add_option("--overlap", a->overlap,
                        "While the last instance runs: skip (the tick, counted), buffer_one (start one when it "
                        "finishes), allow_all")
            ->capture_default_str();
        sub->add_option("--catchup-window", a->catchup_window,
                        "After downtime, ticks late by up to this fire; older ones are skipped and counted")
            ->capture_default_str();
        sub->add_option("--jitter", a->jitter, "Delay each tick's start by up to this (the same delay on every host)")
            ->capture_default_str();
        sub->add_flag("--paused", a->paused, "Create it paused (`durable schedule resume` starts it)");
        sub->add_flag("--force", a->force, "Accept an orchestration name no live host or example registers");
        sub->add_flag("--json", a->json, "Print the schedule as JSON");
        commands.add(sub, [&g, a] { return run_create(g, *a); });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("list", "List the schedules: next fire time and what became of their ticks");
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] { return run_list(g, *a); });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("get", "Show one schedule");
        sub->add_option("ID", a->id, "The schedule's id")->required();
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] {
            auto c = existing_client(g, a->id);
            print_info(require_schedule(c, a->id, g), a->json);
            return kExitOk;
        });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("pause", "Stop firing a schedule's ticks (they are not caught up on resume)");
        sub->add_option("ID", a->id, "The schedule's id")->required();
        sub->add_option("--reason", a->reason, "Why, kept with the schedule");
        commands.add(sub, [&g, a] {
            auto c = existing_client(g, a->id);
            require_schedule(c, a->id, g);
            auto s = c.pause_schedule(a->id, a->reason);
            fmt::print("schedule '{}' paused\n", s.spec.id);
            return kExitOk;
        });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("resume", "Fire a paused schedule again, from its next tick after now");
        sub->add_option("ID", a->id, "The schedule's id")->required();
        commands.add(sub, [&g, a] {
            auto c = existing_client(g, a->id);
            require_schedule(c, a->id, g);
            auto s = c.resume_schedule(a->id);
            fmt::print("schedule '{}' active; next fire {} UTC\n", s.spec.id, utc_or_dash(s.next_fire_ms));
            return kExitOk;
        });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand(
            "trigger", "Start the schedule's orchestration now (paused or not, whatever its overlap); prints the id");
        sub->add_option("ID", a->id, "The schedule's id")->required();
        commands.add(sub, [&g, a] {
            auto c = existing_client(g, a->id);
            require_schedule(c, a->id, g);
            fmt::print("{}\n", c.trigger_schedule(a->id));
            return kExitOk;
        });
    }
    {
        auto a = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("delete", "Delete a schedule (the instances it started stay)");
        sub->add_option("ID", a->id, "The schedule's id")->required();
        commands.add(sub, [&g, a] {
            auto c = existing_client(g, a->id);
            if (!c.delete_schedule(a->id)) {
                throw Failure(fmt::format("no schedule '{}' in '{}'; `durable schedule list` shows the schedules there",
                                          a->id, g.db));
            }
            fmt::print("schedule '{}' deleted\n", a->id);
            return kExitOk;
        });
    }
}

}  // namespace durable::cli
