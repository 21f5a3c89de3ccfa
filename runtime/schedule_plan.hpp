// runtime/schedule_plan.hpp — what a schedule does at a given time, as a pure function of its
// row: which ticks start instances, which are skipped (overlap) or missed (older than the
// catch-up window), and the row's next state. The scheduler (scheduler.cpp) and the client
// (schedule_client.cpp) commit the result with Store::update_schedule, whose CAS on the row's
// version makes each step happen once however many hosts compute it.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "durable/schedule.hpp"
#include "store/store.hpp"

namespace durable::detail {

// The id of the instance a tick starts: `<schedule id>@<tick, ISO 8601 UTC>`.
std::string tick_instance_id(const std::string& schedule_id, store::Millis tick);
// How long the tick's start is delayed: in [0, jitter_ms], from a hash of the schedule id and
// the tick, so every host computes the same delay.
store::Millis tick_jitter(const std::string& schedule_id, store::Millis tick, store::Millis jitter_ms);
// An instance of the schedule's orchestration with the schedule's input, id `id`, starting at
// `start_at`.
store::NewInstance schedule_instance(const store::ScheduleRow& row, const std::string& id, store::Millis now,
                                     store::Millis start_at, const std::string& actor);

struct StepLimits {
    int max_ticks = 100;            // ticks that fire or are skipped in one step (the rest: next step)
    int max_missed = 1'000'000;     // missed ticks counted in one step
};

// The schedule's step at `now`, or none when there is nothing to do (no tick due, no buffered
// tick that can start). `running(id)` says whether instance `id` has not finished (a missing
// instance has). The update's row carries the version it was computed from. A cron
// expression that no longer parses (a row written by hand) pauses the schedule with a note.
std::optional<store::ScheduleUpdate> plan_schedule_step(const store::ScheduleRow& row, store::Millis now,
                                                        const std::function<bool(const std::string&)>& running,
                                                        const std::string& actor, StepLimits limits = {});

}  // namespace durable::detail
