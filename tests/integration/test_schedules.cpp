// Schedules fired by real hosts on a fake clock (ManualClock, shared by every host and client):
// a one-minute schedule over ten simulated minutes on three hosts starts exactly ten instances;
// each overlap policy; catch-up after a thirty-minute outage, within and beyond the window;
// pause, resume, trigger, delete, and errors that name what is wrong.
//
// The hosts look at the schedules every few real milliseconds (schedule_poll_interval), so a
// step of the fake clock is seen at once; every wait is bounded and waits for a state.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "runtime/schedule_plan.hpp"
#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kMin = 60'000;
// 2025-11-28T09:00:30Z: half a minute before a whole minute, so ticks fall on whole minutes.
constexpr std::int64_t kStart = 1'764'320'430'000;
constexpr std::int64_t kT1 = kStart + 30'000;  // the first tick, 09:01:00

Task<Json> job(OrchestrationContext&, Json input) { co_return input; }

Task<std::string> hold(OrchestrationContext& ctx) {
    co_return co_await ctx.wait_for_external_event<std::string>("release");
}

std::shared_ptr<Registry> registry() {
    auto reg = std::make_shared<Registry>();
    reg->add_orchestrator("job", job);
    reg->add_orchestrator("hold", hold);
    return reg;
}

// Polls `cond` every few ms for up to 20 s (real time).
bool eventually(const std::function<bool()>& cond) {
    for (int i = 0; i < 4000; ++i) {
        if (cond()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return cond();
}

std::int64_t counter(Host& h, const char* name) { return h.metrics().counter(name, "").value(); }

// Hosts on one database (each with a Database handle of its own, as separate processes have)
// and one fake clock.
template <class Kind>
struct Fleet {
    explicit Fleet(int hosts) {
        for (int i = 0; i < hosts; ++i) start_host();
    }
    ~Fleet() {
        for (auto& h : hosts) h->stop();
    }
    void start_host() {
        HostOptions o;
        o.host_id = fmt::format("h{}", next_id++);
        o.clock = clock;
        // Longer than every simulated outage: leases never lapse because the fake clock jumped.
        o.lease_duration = std::chrono::hours(2);
        o.poll_interval = 10ms;
        o.schedule_poll_interval = 5ms;
        dbs.push_back(Database::open(kind.target()));
        hosts.push_back(std::make_unique<Host>(dbs.back(), reg, o));
        hosts.back()->start();
    }
    void stop_all() {
        for (auto& h : hosts) h->stop();
        hosts.clear();
    }
    Client client() { return hosts.front()->client(); }
    // Every running host has begun a full look at the schedules after this call.
    void let_every_host_look() {
        std::vector<std::int64_t> before;
        for (auto& h : hosts) before.push_back(counter(*h, "durable_schedule_looks_total"));
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            REQUIRE(eventually([&] { return counter(*hosts[i], "durable_schedule_looks_total") >= before[i] + 2; }));
        }
    }
    // Advances the fake clock and waits until the schedule has handled every tick due by then.
    ScheduleInfo advance(const std::string& schedule, std::chrono::milliseconds d) {
        clock->advance(d);
        auto c = client();
        auto now = clock->now_ms();
        REQUIRE(eventually([&] {
            auto s = c.get_schedule(schedule);
            return s && s->next_fire_ms && *s->next_fire_ms > now;
        }));
        let_every_host_look();
        return *c.get_schedule(schedule);
    }

    Kind kind;
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kStart);
    std::shared_ptr<Registry> reg = registry();
    std::vector<Database> dbs;
    std::vector<std::unique_ptr<Host>> hosts;
    int next_id = 0;
};

std::string tick_id(const std::string& schedule, std::int64_t tick) { return schedule + "@" + format_utc(tick); }

std::vector<std::string> instance_ids(Client& c, const std::string& name) {
    QueryFilter f;
    f.name = name;
    std::vector<std::string> ids;
    for (const auto& s : c.query(f, 1000).instances) ids.push_back(s.id);
    return ids;
}

}  // namespace

TEST_CASE_TEMPLATE("a one-minute schedule over ten simulated minutes on three hosts starts exactly ten instances", S,
                   DURABLE_TEST_STORES) {
    Fleet<S> fleet(3);
    auto c = fleet.client();
    ScheduleSpec spec;
    spec.id = "every-minute";
    spec.cron = "* * * * *";
    spec.orchestration = "job";
    spec.input = {{"n", 1}};
    spec.overlap = Overlap::AllowAll;
    auto created = c.create_schedule(spec);
    CHECK(created.next_fire_ms == std::optional<std::int64_t>(kT1));
    fleet.let_every_host_look();
    CHECK(c.get_schedule("every-minute")->fired == 0);  // nothing is due before the first tick

    for (int i = 1; i <= 10; ++i) {
        auto s = fleet.advance("every-minute", 1min);
        CHECK(s.fired == i);
        CHECK(s.last_fire_ms == std::optional<std::int64_t>(kT1 + (i - 1) * kMin));
        CHECK(s.missed == 0);
        CHECK(s.skipped == 0);
    }
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) expected.push_back(tick_id("every-minute", kT1 + i * kMin));
    CHECK(instance_ids(c, "job") == expected);
    std::int64_t started = 0, lost = 0;
    for (auto& h : fleet.hosts) {
        started += counter(*h, "durable_schedule_instances_started_total");
        lost += counter(*h, "durable_schedule_conflicts_total");
    }
    CHECK(started == 10);
    MESSAGE("ticks that more than one host tried to fire (the CAS turned the late ones away): ", lost);
    for (const auto& id : expected) {
        auto done = c.wait_for_completion(id, 30s);
        CHECK(done.status == Status::Completed);
        CHECK(done.output == Json{{"n", 1}});
    }
    // The clock standing still, nobody fires anything more.
    fleet.let_every_host_look();
    CHECK(instance_ids(c, "job").size() == 10);
}

TEST_CASE_TEMPLATE("overlap skip: ticks while the last instance runs are skipped and counted", S, DURABLE_TEST_STORES) {
    Fleet<S> fleet(2);
    auto c = fleet.client();
    c.create_schedule(ScheduleSpec{"skipper", "* * * * *", "hold", Json(), Overlap::Skip});
    auto s = fleet.advance("skipper", 1min);
    CHECK(s.fired == 1);
    const auto first = tick_id("skipper", kT1);
    CHECK(s.last_instance_id == std::optional<std::string>(first));
    s = fleet.advance("skipper", 1min);
    s = fleet.advance("skipper", 1min);
    CHECK(s.fired == 1);
    CHECK(s.skipped == 2);
    CHECK(instance_ids(c, "hold") == std::vector<std::string>{first});
    REQUIRE(eventually([&] { return c.get_status(first)->status == Status::Running; }));
    c.raise_event(first, "release", "go");
    CHECK(c.wait_for_completion(first, 30s).status == Status::Completed);
    s = fleet.advance("skipper", 1min);
    CHECK(s.fired == 2);
    CHECK(s.skipped == 2);
    CHECK(s.last_instance_id == std::optional<std::string>(tick_id("skipper", kT1 + 3 * kMin)));
}

TEST_CASE_TEMPLATE("overlap buffer_one: one tick waits for the last instance, later ones are skipped", S,
                   DURABLE_TEST_STORES) {
    Fleet<S> fleet(2);
    auto c = fleet.client();
    c.create_schedule(ScheduleSpec{"buffer", "* * * * *", "hold", Json(), Overlap::BufferOne});
    auto s = fleet.advance("buffer", 1min);
    const auto first = tick_id("buffer", kT1), second = tick_id("buffer", kT1 + kMin);
    CHECK(s.fired == 1);
    s = fleet.advance("buffer", 1min);
    CHECK(s.fired == 1);
    CHECK(s.buffered_tick_ms == std::optional<std::int64_t>(kT1 + kMin));
    s = fleet.advance("buffer", 1min);
    CHECK(s.buffered_tick_ms == std::optional<std::int64_t>(kT1 + kMin));
    CHECK(s.skipped == 1);
    CHECK(instance_ids(c, "hold") == std::vector<std::string>{first});
    // The first finishes: the buffered tick starts without the clock moving.
    REQUIRE(eventually([&] { return c.get_status(first)->status == Status::Running; }));
    c.raise_event(first, "release", "go");
    CHECK(c.wait_for_completion(first, 30s).status == Status::Completed);
    REQUIRE(eventually([&] { return c.get_schedule("buffer")->fired == 2; }));
    s = *c.get_schedule("buffer");
    CHECK_FALSE(s.buffered_tick_ms);
    CHECK(s.last_instance_id == std::optional<std::string>(second));
    CHECK(instance_ids(c, "hold") == std::vector<std::string>{first, second});
    REQUIRE(eventually([&] { return c.get_status(second)->status == Status::Running; }));
    c.raise_event(second, "release", "go");
    CHECK(c.wait_for_completion(second, 30s).status == Status::Completed);
}

TEST_CASE_TEMPLATE("overlap allow_all: every tick starts while the earlier ones still run", S, DURABLE_TEST_STORES) {
    Fleet<S> fleet(2);
    auto c = fleet.client();
    c.create_schedule(ScheduleSpec{"all", "* * * * *", "hold", Json(), Overlap::AllowAll});
    for (int i = 0; i < 3; ++i) fleet.advance("all", 1min);
    auto ids = instance_ids(c, "hold");
    REQUIRE(ids.size() == 3);
    for (const auto& id : ids) REQUIRE(eventually([&] { return c.get_status(id)->status == Status::Running; }));
    CHECK(c.get_schedule("all")->skipped == 0);
    for (const auto& id : ids) c.raise_event(id, "release", "go");
    for (const auto& id : ids) CHECK(c.wait_for_completion(id, 30s).status == Status::Completed);
}

TEST_CASE_TEMPLATE("catch-up after a thirty-minute outage: ticks within the window fire, older ones are missed", S,
                   DURABLE_TEST_STORES) {
    Fleet<S> fleet(1);
    auto c = fleet.client();
    ScheduleSpec within{"within", "* * * * *", "job", Json(), Overlap::AllowAll, 45min};
    ScheduleSpec beyond{"beyond", "* * * * *", "job", Json(), Overlap::AllowAll, 10min};
    ScheduleSpec skipping{"skipping", "* * * * *", "job", Json(), Overlap::Skip, 10min};
    c.create_schedule(within);
    c.create_schedule(beyond);
    c.create_schedule(skipping);
    fleet.stop_all();  // the outage: no host runs
    fleet.clock->advance(30min + 30s);  // now 09:31:00, ticks 09:01 .. 09:31 are due
    fleet.start_host();
    auto c2 = fleet.client();
    auto now = fleet.clock->now_ms();
    for (const char* id : {"within", "beyond", "skipping"}) {
        REQUIRE(eventually([&] { return c2.get_schedule(id)->next_fire_ms > now; }));
    }
    auto w = *c2.get_schedule("within");
    CHECK(w.fired == 31);
    CHECK(w.missed == 0);
    auto b = *c2.get_schedule("beyond");
    CHECK(b.missed == 20);  // 09:01 .. 09:20 are older than 09:31 - 10 min
    CHECK(b.fired == 11);   // 09:21 .. 09:31
    CHECK(b.last_fire_ms == std::optional<std::int64_t>(now));
    auto ids = instance_ids(c2, "job");
    std::set<std::string> all(ids.begin(), ids.end());
    CHECK(all.count(tick_id("beyond", kT1 + 20 * kMin)) == 1);
    CHECK(all.count(tick_id("beyond", kT1 + 19 * kMin)) == 0);
    auto k = *c2.get_schedule("skipping");
    CHECK(k.missed == 20);
    CHECK(k.fired + k.skipped == 11);  // the first in the window starts; the rest find it running
    CHECK(k.fired == 1);
    CHECK(ids.size() == 31 + 11 + 1);
}

TEST_CASE_TEMPLATE("schedules pause, resume, trigger and delete, and say what is wrong", S, DURABLE_TEST_STORES) {
    Fleet<S> fleet(1);
    auto c = fleet.client();
    ScheduleSpec spec{"ops", "*/5 * * * *", "job", Json{{"x", 1}}, Overlap::Skip, 10min, 20s};
    auto info = c.create_schedule(spec);
    CHECK(info.next_fire_ms == std::optional<std::int64_t>(kStart + 4 * kMin + 30'000));  // 09:05
    CHECK(info.spec.jitter == 20s);
    CHECK(info.spec.input == Json{{"x", 1}});
    CHECK(c.create_schedule(spec).created_at_ms == info.created_at_ms);  // the same definition: returned
    auto other = spec;
    other.cron = "0 * * * *";
    CHECK_THROWS_WITH_AS(c.create_schedule(other), doctest::Contains("exists already with another definition"),
                         InvalidInput);
    auto bad = spec;
    bad.id = "bad";
    bad.cron = "0 0 32 * *";
    CHECK_THROWS_WITH_AS(c.create_schedule(bad), doctest::Contains("day-of-month field"), InvalidInput);
    bad.cron = "0 0 * *";
    CHECK_THROWS_WITH_AS(c.create_schedule(bad), doctest::Contains("expected 5"), InvalidInput);
    bad.cron = "* * * * *";
    bad.catchup_window = -1ms;
    CHECK_THROWS_AS(c.create_schedule(bad), InvalidInput);
    CHECK_FALSE(c.get_schedule("bad"));

    auto paused = c.pause_schedule("ops", "maintenance");
    CHECK(paused.paused);
    CHECK(paused.note == std::optional<std::string>("maintenance"));
    CHECK_FALSE(paused.next_fire_ms);
    fleet.clock->advance(10min);  // 09:10:30: two ticks pass while paused
    fleet.let_every_host_look();
    auto still = *c.get_schedule("ops");
    CHECK(still.fired == 0);
    CHECK(still.missed == 0);
    // Trigger works while paused, whatever the overlap policy.
    auto iid = c.trigger_schedule("ops");
    CHECK(iid.rfind("ops@trigger-", 0) == 0);
    CHECK(c.wait_for_completion(iid, 30s).output == Json{{"x", 1}});
    CHECK(c.get_schedule("ops")->fired == 1);
    CHECK(c.get_schedule("ops")->last_instance_id == std::optional<std::string>(iid));
    auto resumed = c.resume_schedule("ops");
    CHECK_FALSE(resumed.paused);
    CHECK(resumed.next_fire_ms == std::optional<std::int64_t>(kStart + 14 * kMin + 30'000));  // 09:15, not 09:05
    // The 09:15 tick starts late by its jitter, the same on every host: at 09:15:00 its
    // instance exists and waits.
    const std::int64_t at = kStart + 14 * kMin + 30'000;
    const auto jitter = detail::tick_jitter("ops", at, 20'000);
    REQUIRE(jitter > 0);
    auto s = fleet.advance("ops", 4min + 30s);
    CHECK(s.fired == 2);
    const auto tick = tick_id("ops", at);
    CHECK(s.last_instance_id == std::optional<std::string>(tick));
    fleet.let_every_host_look();
    CHECK(c.get_status(tick)->status == Status::Pending);
    fleet.clock->advance(std::chrono::milliseconds(jitter));
    CHECK(c.wait_for_completion(tick, 30s).status == Status::Completed);

    CHECK(c.list_schedules().size() == 1);
    CHECK(c.delete_schedule("ops"));
    CHECK_FALSE(c.delete_schedule("ops"));
    CHECK(c.list_schedules().empty());
    CHECK(c.get_status(tick));  // its instances stay
    CHECK_THROWS_AS(c.pause_schedule("ops"), ScheduleNotFound);
    CHECK_THROWS_AS(c.resume_schedule("ops"), ScheduleNotFound);
    CHECK_THROWS_AS(c.trigger_schedule("ops"), ScheduleNotFound);
}
