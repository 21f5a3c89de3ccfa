// durable/schedule.hpp — recurring schedules: a cron expression that starts instances of one
// orchestration, stored in the database and fired by the hosts.
//
// Every running Host (unless HostOptions::run_schedules is off) fires due ticks. A tick fires
// exactly once across all hosts: its instance id is `<schedule id>@<tick time, ISO 8601 UTC>`
// (`nightly@2026-11-28T02:00:00Z`), created in the same transaction that advances the
// schedule's next fire time under a compare-and-set, so two hosts racing for a tick start one
// instance. Times are UTC (see durable/cron.hpp).
//
// After an outage, ticks that are late by no more than the catch-up window still fire (in
// order, each through the overlap policy); older ones are skipped and counted as `missed`.
// The overlap policy decides what a tick does while the schedule's previous instance (the
// last one it started, by tick or trigger) has not finished (Pending counts: it will run):
//   Skip      — the tick is skipped and counted as `skipped`;
//   BufferOne — the tick is remembered and starts as soon as the previous instance finishes;
//               while one is remembered, further ticks are skipped and counted;
//   AllowAll  — the tick starts regardless.
// Jitter delays each tick's start by a pseudo-random amount in [0, jitter], the same for a
// given schedule and tick on every host, to spread schedules that share a tick.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace durable {

enum class Overlap { Skip, BufferOne, AllowAll };

// "skip", "buffer_one", "allow_all".
const char* to_string(Overlap o);
// The overlap policy a name (as to_string writes it) stands for; none for anything else.
std::optional<Overlap> overlap_from_string(std::string_view s);

// What a schedule is: Client::create_schedule takes one.
struct ScheduleSpec {
    std::string id;                   // non-empty, UTF-8; its ticks' instance ids start with it
    std::string cron;                 // five fields, UTC (durable/cron.hpp)
    std::string orchestration;        // the orchestration each tick starts
    nlohmann::json input;             // its input
    Overlap overlap = Overlap::Skip;
    // Ticks later than this (hosts were down) are skipped and counted as missed.
    std::chrono::milliseconds catchup_window{std::chrono::hours(1)};
    std::chrono::milliseconds jitter{0};  // each tick starts up to this much later
    bool paused = false;                  // create it paused
};

// A schedule and what became of its ticks.
struct ScheduleInfo {
    ScheduleSpec spec;
    bool paused = false;
    std::optional<std::string> note;               // the reason given when it was paused
    std::optional<std::int64_t> next_fire_ms;      // the next tick (none while paused)
    std::optional<std::int64_t> last_fire_ms;      // the last tick handled (fired, skipped or missed)
    std::optional<std::string> last_instance_id;   // the instance it started last
    std::optional<std::int64_t> buffered_tick_ms;  // BufferOne: a tick waiting for the last instance
    std::int64_t fired = 0;    // instances started (ticks and triggers)
    std::int64_t missed = 0;   // ticks older than the catch-up window, skipped
    std::int64_t skipped = 0;  // ticks skipped by the overlap policy
    std::int64_t created_at_ms = 0, updated_at_ms = 0;
};

}  // namespace durable
