// Schedule steps as a pure function of the row: due ticks, the catch-up window (missed ticks
// counted), each overlap policy, deterministic jitter, and the limits of one step.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "durable/cron.hpp"
#include "runtime/schedule_plan.hpp"

using namespace durable;
using durable::detail::plan_schedule_step;
using durable::detail::tick_instance_id;
using durable::detail::tick_jitter;
using store::Millis;

namespace {

constexpr Millis kMin = 60'000;
constexpr Millis kT0 = 1'764'320'400'000;  // 2025-11-28T09:00:00Z, a whole minute

store::ScheduleRow every_minute(const std::string& overlap, Millis window = 10 * kMin) {
    store::ScheduleRow r;
    r.id = "s";
    r.cron = "* * * * *";
    r.orchestration = "job";
    r.input = R"({"k":"v"})";
    r.overlap = overlap;
    r.catchup_window_ms = window;
    r.next_fire = kT0 + kMin;
    r.version = 7;
    return r;
}

const auto nothing_runs = [](const std::string&) { return false; };
const auto everything_runs = [](const std::string&) { return true; };

}  // namespace

TEST_CASE("a schedule step fires a due tick and moves next_fire to the following one") {
    auto row = every_minute("allow_all");
    CHECK_FALSE(plan_schedule_step(row, kT0 + kMin - 1, nothing_runs, "a"));  // not due yet
    auto step = plan_schedule_step(row, kT0 + kMin + 250, nothing_runs, "scheduler@a");
    REQUIRE(step);
    CHECK(step->row.version == 7);  // the CAS token: the version it was computed from
    CHECK(step->row.next_fire == std::optional<Millis>(kT0 + 2 * kMin));
    CHECK(step->row.last_fire == std::optional<Millis>(kT0 + kMin));
    CHECK(step->row.fired == 1);
    REQUIRE(step->instances.size() == 1);
    const auto& inst = step->instances[0];
    CHECK(inst.id == "s@2025-11-28T09:01:00Z");
    CHECK(inst.id == tick_instance_id("s", kT0 + kMin));
    CHECK(inst.name == "job");
    CHECK(inst.input == std::optional<std::string>(R"({"k":"v"})"));
    CHECK(inst.start_at == kT0 + kMin);  // no jitter
    CHECK(inst.actor == "scheduler@a");
    CHECK(inst.start_event.find(R"("name":"job")") != std::string::npos);
    CHECK(step->row.last_instance_id == std::optional<std::string>(inst.id));
    // A paused schedule does nothing.
    row.paused = true;
    CHECK_FALSE(plan_schedule_step(row, kT0 + 5 * kMin, nothing_runs, "a"));
}

TEST_CASE("overlap skip skips a tick while the last instance runs and counts it") {
    auto row = every_minute("skip");
    row.last_instance_id = "s@earlier";
    auto step = plan_schedule_step(row, kT0 + kMin, everything_runs, "a");
    REQUIRE(step);
    CHECK(step->instances.empty());
    CHECK(step->row.skipped == 1);
    CHECK(step->row.fired == 0);
    CHECK(step->row.next_fire == std::optional<Millis>(kT0 + 2 * kMin));
    auto free = plan_schedule_step(row, kT0 + kMin, nothing_runs, "a");
    REQUIRE(free);
    CHECK(free->instances.size() == 1);
    CHECK(free->row.skipped == 0);
}

TEST_CASE("overlap buffer_one remembers one tick, skips the rest, and starts it when the last instance finishes") {
    auto row = every_minute("buffer_one");
    row.last_instance_id = "s@earlier";
    auto first = plan_schedule_step(row, kT0 + kMin, everything_runs, "a");
    REQUIRE(first);
    CHECK(first->instances.empty());
    CHECK(first->row.buffered_tick == std::optional<Millis>(kT0 + kMin));
    CHECK(first->row.skipped == 0);
    auto second = plan_schedule_step(first->row, kT0 + 2 * kMin, everything_runs, "a");
    REQUIRE(second);
    CHECK(second->instances.empty());
    CHECK(second->row.buffered_tick == std::optional<Millis>(kT0 + kMin));
    CHECK(second->row.skipped == 1);
    // Still running, nothing due: nothing to do.
    CHECK_FALSE(plan_schedule_step(second->row, kT0 + 2 * kMin + 30'000, everything_runs, "a"));
    // Finished: the buffered tick starts now, under its own tick's id.
    auto third = plan_schedule_step(second->row, kT0 + 2 * kMin + 30'000, nothing_runs, "a");
    REQUIRE(third);
    REQUIRE(third->instances.size() == 1);
    CHECK(third->instances[0].id == tick_instance_id("s", kT0 + kMin));
    CHECK(third->instances[0].start_at == kT0 + 2 * kMin + 30'000);
    CHECK_FALSE(third->row.buffered_tick);
    CHECK(third->row.fired == 1);
    CHECK(third->row.next_fire == std::optional<Millis>(kT0 + 3 * kMin));  // unchanged: not due
}

TEST_CASE("after an outage ticks within the catch-up window fire and older ones are counted as missed") {
    auto row = every_minute("allow_all", 10 * kMin);
    // Down from T0 to T0+30min: ticks T0+1 .. T0+30; the window keeps T0+20 .. T0+30.
    auto step = plan_schedule_step(row, kT0 + 30 * kMin, nothing_runs, "a");
    REQUIRE(step);
    CHECK(step->row.missed == 19);
    CHECK(step->instances.size() == 11);
    CHECK(step->instances.front().id == tick_instance_id("s", kT0 + 20 * kMin));
    CHECK(step->instances.back().id == tick_instance_id("s", kT0 + 30 * kMin));
    CHECK(step->row.fired == 11);
    CHECK(step->row.next_fire == std::optional<Millis>(kT0 + 31 * kMin));
    CHECK(step->row.last_fire == std::optional<Millis>(kT0 + 30 * kMin));
    // Under skip, the catch-up ticks after the first find it running.
    auto skip = every_minute("skip", 10 * kMin);
    auto s = plan_schedule_step(skip, kT0 + 30 * kMin, nothing_runs, "a");
    REQUIRE(s);
    CHECK(s->instances.size() == 1);
    CHECK(s->row.skipped == 10);
    CHECK(s->row.missed == 19);
}

TEST_CASE("one schedule step handles at most max_ticks ticks and the next step goes on") {
    auto row = every_minute("allow_all", 1000 * kMin);
    detail::StepLimits limits;
    limits.max_ticks = 4;
    auto a = plan_schedule_step(row, kT0 + 10 * kMin, nothing_runs, "a", limits);
    REQUIRE(a);
    CHECK(a->instances.size() == 4);
    CHECK(a->row.next_fire == std::optional<Millis>(kT0 + 5 * kMin));
    auto b = plan_schedule_step(a->row, kT0 + 10 * kMin, nothing_runs, "a", limits);
    REQUIRE(b);
    CHECK(b->instances.size() == 4);
    CHECK(b->instances.front().id == tick_instance_id("s", kT0 + 5 * kMin));
}

TEST_CASE("jitter delays a tick by the same amount on every host, within the bound") {
    CHECK(tick_jitter("s", kT0, 0) == 0);
    std::set<Millis> seen;
    for (int i = 0; i < 50; ++i) {
        auto j = tick_jitter("s", kT0 + i * kMin, 30'000);
        CHECK(j >= 0);
        CHECK(j <= 30'000);
        CHECK(j == tick_jitter("s", kT0 + i * kMin, 30'000));
        seen.insert(j);
    }
    CHECK(seen.size() > 40);  // spread, not one fixed delay
    CHECK(tick_jitter("s", kT0, 30'000) != tick_jitter("t", kT0, 30'000));
    auto row = every_minute("allow_all");
    row.jitter_ms = 30'000;
    auto step = plan_schedule_step(row, kT0 + kMin, nothing_runs, "a");
    REQUIRE(step);
    CHECK(step->instances[0].start_at == kT0 + kMin + tick_jitter("s", kT0 + kMin, 30'000));
}

TEST_CASE("a schedule row whose cron no longer parses is paused with a note naming the field") {
    auto row = every_minute("skip");
    row.cron = "61 * * * *";
    auto step = plan_schedule_step(row, kT0 + kMin, nothing_runs, "a");
    REQUIRE(step);
    CHECK(step->row.paused);
    CHECK_FALSE(step->row.next_fire);
    REQUIRE(step->row.note);
    CHECK(step->row.note->find("minute field") != std::string::npos);
    CHECK(step->instances.empty());
}
