// Hosts that run different code, in one process on one database (each case on both stores): instances wait for a host that
// registers their orchestration, activities the owning host lacks go through task rows to a
// host that has them, per-activity limits, heartbeats, and cancellation of running activities.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "support/engine_fixture.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

Task<int> chain3(OrchestrationContext& ctx, int n) {
    for (int i = 0; i < 3; ++i) n = co_await ctx.call_activity<int>("inc", n);
    co_return n;
}

Task<int> fan(OrchestrationContext& ctx, int n) {
    std::vector<Task<int>> calls;
    for (int i = 0; i < n; ++i) calls.push_back(ctx.call_activity<int>("slow", i));
    int sum = 0;
    for (int v : co_await when_all(std::move(calls))) sum += v;
    co_return sum;
}

Task<std::string> one_long(OrchestrationContext& ctx) {
    co_return co_await ctx.call_activity<std::string>("long", 0);
}

HostOptions fast(std::string id, int threads = 4) {
    HostOptions o;
    o.host_id = std::move(id);
    o.lease_duration = 1000ms;
    o.poll_interval = 10ms;
    o.activity_threads = threads;
    return o;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

int count_events(Client& c, const std::string& id, const std::string& type) {
    int n = 0;
    for (const auto& e : c.history(id)) n += e.event.value("t", "") == type;
    return n;
}

// Runs until cancelled (bounded), heartbeating; says whether it saw the cancellation.
struct LongActivity {
    std::atomic<int> started{0};
    std::atomic<int> cancelled{0};
    void add_to(Registry& r) {
        r.add_activity("long", [this](ActivityContext& ctx, int) -> std::string {
            ++started;
            for (int i = 0; i < 2000; ++i) {
                if (!ctx.heartbeat(Json{{"i", i}})) break;
                ctx.cancellation().wait_for(SystemClock::instance(), 10ms);
            }
            if (ctx.cancellation().cancelled()) {
                ++cancelled;
                throw Cancelled("cancelled");
            }
            return "finished";
        });
    }
};

}  // namespace

TEST_CASE_TEMPLATE("an instance whose orchestration no host registers stays Pending, then runs on a host that does", S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto old_reg = std::make_shared<Registry>();
    old_reg->add_orchestrator("v1", chain3).add_activity("inc", [](int n) { return n + 1; });
    Host old_host(db, old_reg, fast("old"));
    old_host.start();
    Client client(db);  // standalone: any name may be scheduled
    auto waiting = client.schedule("v2", 0);
    auto runs = client.schedule("v1", 0);
    CHECK(client.wait_for_completion(runs, 20s).output == 3);
    // The old host has looked for work many times since it was scheduled.
    auto s = client.get_status(waiting);
    REQUIRE(s);
    CHECK(s->status == Status::Pending);
    CHECK_FALSE(s->lease_owner.has_value());

    auto new_reg = std::make_shared<Registry>();
    new_reg->add_orchestrator("v1", chain3).add_orchestrator("v2", chain3).add_activity("inc", [](int n) { return n + 1; });
    Host new_host(db, new_reg, fast("new"));
    new_host.start();
    CHECK(client.wait_for_completion(waiting, 20s).output == 3);
    CHECK(new_host.stats().claims >= 1);
}

TEST_CASE_TEMPLATE("activities the owning host lacks run on a host that registers them, through task rows", S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto orch_reg = std::make_shared<Registry>();
    orch_reg->add_orchestrator("chain3", chain3);
    auto act_reg = std::make_shared<Registry>();
    act_reg->add_activity("inc", [](int n) { return n + 1; });
    Host orch(db, orch_reg, fast("orch"));
    Host worker(db, act_reg, fast("worker"));
    orch.start();
    worker.start();
    auto c = orch.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(c.schedule("chain3", i));
    for (int i = 0; i < 20; ++i) {
        auto s = c.wait_for_completion(ids[static_cast<std::size_t>(i)], 30s);
        CHECK(s.status == Status::Completed);
        CHECK(s.output == i + 3);
        CHECK(count_events(c, ids[static_cast<std::size_t>(i)], "TaskCompleted") == 3);
    }
    CHECK(orch.stats().activities == 0);
    CHECK(worker.stats().activities == 60);
    CHECK(worker.stats().episodes == 0);
    // Every task row is gone with its delivery.
    CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 0);
}

TEST_CASE_TEMPLATE("max_concurrent holds under load: the activity never runs more than its limit at once on a host", S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    std::atomic<int> now{0}, most{0}, runs{0};
    auto reg = std::make_shared<Registry>();
    reg->add_orchestrator("fan", fan);
    ActivitySettings limited;
    limited.max_concurrent = 2;
    reg->add_activity(
        "slow",
        [&](int i) {
            int n = ++now;
            int seen = most.load();
            while (n > seen && !most.compare_exchange_weak(seen, n)) {
            }
            std::this_thread::sleep_for(5ms);
            --now;
            ++runs;
            return i;
        },
        limited);
    Host host(db, reg, fast("h", 8));
    host.start();
    auto c = host.client();
    auto a = c.schedule("fan", 30);
    auto b = c.schedule("fan", 30);
    CHECK(c.wait_for_completion(a, 60s).output == 435);
    CHECK(c.wait_for_completion(b, 60s).output == 435);
    CHECK(runs == 60);
    CHECK(most.load() <= 2);
    CHECK(most.load() >= 1);
}

TEST_CASE_TEMPLATE("terminating an instance cancels its running activity's token", S, DURABLE_TEST_STORES) {
    SUBCASE("on the owning host (no task row)") {
        auto reg = std::make_shared<Registry>();
        reg->add_orchestrator("one_long", one_long);
        LongActivity act;
        act.add_to(*reg);
        test::EngineOn<S> e(reg);
        auto c = e.client();
        auto id = c.schedule("one_long");
        REQUIRE(wait_until([&] { return act.started > 0; }, 20s));
        c.terminate(id, "enough");
        CHECK(c.wait_for_completion(id, 20s).status == Status::Terminated);
        CHECK(wait_until([&] { return act.cancelled > 0; }, 10s));
    }
    SUBCASE("on an activity worker (a task row): its heartbeat learns it") {
        S env;
        auto db = Database::open(env.target());
        auto orch_reg = std::make_shared<Registry>();
        orch_reg->add_orchestrator("one_long", one_long);
        auto act_reg = std::make_shared<Registry>();
        LongActivity act;
        act.add_to(*act_reg);
        Host orch(db, orch_reg, fast("orch"));
        Host worker(db, act_reg, fast("worker"));
        orch.start();
        worker.start();
        auto c = orch.client();
        auto id = c.schedule("one_long");
        REQUIRE(wait_until([&] { return act.started > 0; }, 20s));
        c.terminate(id, "enough");
        CHECK(c.wait_for_completion(id, 20s).status == Status::Terminated);
        CHECK(wait_until([&] { return act.cancelled > 0; }, 10s));
    }
}

TEST_CASE_TEMPLATE("losing an instance's lease cancels its running activity's token", S, DURABLE_TEST_STORES) {
    auto reg = std::make_shared<Registry>();
    reg->add_orchestrator("one_long", one_long);
    LongActivity act;
    act.add_to(*reg);
    test::EngineOn<S> e(reg);
    auto c = e.client();
    auto id = c.schedule("one_long");
    REQUIRE(wait_until([&] { return act.started > 0; }, 20s));
    {
        // Another owner appears (as after this host stalled past its lease and a peer claimed
        // the instance): the next renewal finds the lease gone.
        e.kind.exec("UPDATE instances SET lease_owner = 'thief', version = version + 1 WHERE id = '" + id + "'");
    }
    CHECK(wait_until([&] { return act.cancelled > 0; }, 10s));
}

TEST_CASE_TEMPLATE("a task whose worker stops heartbeating is taken over after its lease, with the last heartbeat's details", S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto orch_reg = std::make_shared<Registry>();
    orch_reg->add_orchestrator("one_long", one_long);
    std::atomic<int> first_started{0};
    auto first_reg = std::make_shared<Registry>();
    first_reg->add_activity("long", [&](ActivityContext& ctx, int) -> std::string {
        ctx.heartbeat(Json{{"done", 7}});
        ++first_started;
        ctx.cancellation().wait_for(SystemClock::instance(), 30s);  // until its host goes
        throw Cancelled("host gone");
    });
    Json seen_details;
    std::mutex mu;
    auto second_reg = std::make_shared<Registry>();
    second_reg->add_activity("long", [&](ActivityContext& ctx, int) -> std::string {
        std::lock_guard lock(mu);
        seen_details = ctx.last_heartbeat_details();
        return "second";
    });
    Host orch(db, orch_reg, fast("orch"));
    orch.start();
    auto first = std::make_unique<Host>(db, first_reg, fast("first"));
    first->start();
    auto c = orch.client();
    auto id = c.schedule("one_long");
    REQUIRE(wait_until([&] { return first_started > 0; }, 20s));
    first->abandon();  // as a crash: the task row stays leased to it until the lease runs out
    first.reset();
    Host second(db, second_reg, fast("second"));
    second.start();
    auto s = c.wait_for_completion(id, 30s);
    CHECK(s.output == "second");
    CHECK(count_events(c, id, "TaskCompleted") == 1);
    std::lock_guard lock(mu);
    CHECK(seen_details == Json{{"done", 7}});
}

namespace {

// The machine's clock an hour ahead (monotonic time is the machine's).
class HourAheadClock final : public Clock {
public:
    std::int64_t now_ms() const override { return SystemClock::instance()->now_ms() + 3'600'000; }
    std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::now(); }
    void sleep_for(std::chrono::nanoseconds d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

TEST_CASE_TEMPLATE("task leases are kept in the database's clock: a worker whose clock runs an hour ahead does not take "
                   "a task another worker holds",
                   S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    std::atomic<int> started{0};
    auto orch_reg = std::make_shared<Registry>();
    orch_reg->add_orchestrator("one_long", one_long);
    // Two leases long, heartbeating: held by its worker through renewals and heartbeats.
    auto act_reg = std::make_shared<Registry>();
    act_reg->add_activity("long", [&](ActivityContext& ctx, int) -> std::string {
        ++started;
        for (int i = 0; i < 20; ++i) {
            ctx.heartbeat(Json{{"i", i}});
            std::this_thread::sleep_for(100ms);
        }
        return "finished";
    });
    Host orch(db, orch_reg, fast("orch"));
    Host holder(db, act_reg, fast("holder"));
    orch.start();
    holder.start();
    auto c = orch.client();
    auto id = c.schedule("one_long");
    REQUIRE(wait_until([&] { return started.load() == 1; }, 20s));
    // Compared in this worker's clock, the holder's task lease would look an hour expired.
    auto ahead_options = fast("ahead");
    ahead_options.clock = std::make_shared<HourAheadClock>();
    Host ahead(db, act_reg, ahead_options);
    ahead.start();
    auto done = c.wait_for_completion(id, 30s);
    CHECK(done.status == Status::Completed);
    CHECK(done.output == "finished");
    CHECK(started.load() == 1);
    CHECK(ahead.stats().activities == 0);
    CHECK(holder.stats().activities == 1);
    ahead.stop();
    holder.stop();
    orch.stop();
}
