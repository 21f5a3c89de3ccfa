// The engine against real SQLite files: every orchestration API, restarts, eviction,
// non-determinism, durable retries.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <set>

#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Engine;

namespace {

Task<std::string> chain(OrchestrationContext& ctx, std::string name) {
    auto a = co_await ctx.call_activity<std::string>("hello", name);
    auto b = co_await ctx.call_activity<std::string>("hello", a);
    co_return co_await ctx.call_activity<std::string>("hello", b);
}

Task<int> fan_out(OrchestrationContext& ctx, int n) {
    std::vector<Task<int>> calls;
    for (int i = 0; i < n; ++i) calls.push_back(ctx.call_activity<int>("square", i));
    auto squares = co_await when_all(std::move(calls));
    int sum = 0;
    for (int s : squares) sum += s;
    co_return sum;
}

Task<std::string> race(OrchestrationContext& ctx, int activity_ms) {
    auto work = ctx.call_activity<std::string>("sleepy", activity_ms);
    auto timer = ctx.create_timer(100ms);
    auto winner = co_await when_any(work, timer);
    // (GCC 12 miscompiles co_await inside ?:, so no ternary here.)
    if (winner == 0) co_return co_await work;
    co_return std::string("timeout");
}

Task<std::string> approval(OrchestrationContext& ctx, int timeout_ms) {
    try {
        auto answer = co_await ctx.wait_for_external_event<std::string>("answer", std::chrono::milliseconds(timeout_ms));
        co_return "got " + answer;
    } catch (const Timeout&) {
        co_return std::string("escalated");
    }
}

Task<Json> two_events(OrchestrationContext& ctx) {
    auto a = co_await ctx.wait_for_external_event<int>("a");
    auto b = co_await ctx.wait_for_external_event<int>("b");
    co_return Json{a, b};
}

Task<int> nested(OrchestrationContext& ctx, int depth) {
    if (depth == 0) co_return co_await ctx.call_activity<int>("square", 3);
    int below = co_await ctx.call_sub_orchestration<int>("nested", depth - 1);
    co_return below + 1;
}

Task<int> counter(OrchestrationContext& ctx, int n) {
    co_await ctx.call_activity<int>("square", n);
    if (n < 100) {
        ctx.continue_as_new(n + 1);
        co_return 0;
    }
    co_return n;
}

Task<std::string> catches(OrchestrationContext& ctx) {
    try {
        co_await ctx.call_activity<std::string>("boom", 1);
    } catch (const TaskFailed& e) {
        co_return std::string("caught ") + e.error_type() + ": " + e.what();
    }
    co_return std::string("not caught");
}

Task<std::string> does_not_catch(OrchestrationContext& ctx) {
    co_return co_await ctx.call_activity<std::string>("boom", 1);
}

Task<std::string> waits_forever(OrchestrationContext& ctx) {
    co_return co_await ctx.wait_for_external_event<std::string>("never");
}

Task<int> slow_steps(OrchestrationContext& ctx, int n) {
    int total = 0;
    for (int i = 0; i < n; ++i) {
        total += co_await ctx.call_activity<int>("count", i);
        co_await ctx.create_timer(20ms);
    }
    co_return total;
}

std::atomic<int> g_flaky_calls{0};
std::atomic<int> g_count_calls{0};

std::shared_ptr<Registry> registry() {
    auto r = std::make_shared<Registry>();
    r->add_activity("hello", [](std::string s) { return "hello " + s; });
    r->add_activity("square", [](int x) { return x * x; });
    r->add_activity("sleepy", [](int ms) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return std::string("done");
    });
    r->add_activity("boom", [](int) -> std::string { throw std::runtime_error("kaboom"); });
    r->add_activity("count", [](int i) {
        g_count_calls++;
        return i;
    });
    r->add_activity("flaky", [](int fail_times) {
        if (g_flaky_calls.fetch_add(1) < fail_times) throw std::runtime_error("not yet");
        return std::string("ok");
    });
    r->add_orchestrator("chain", chain);
    r->add_orchestrator("fan_out", fan_out);
    r->add_orchestrator("race", race);
    r->add_orchestrator("approval", approval);
    r->add_orchestrator("two_events", two_events);
    r->add_orchestrator("nested", nested);
    r->add_orchestrator("counter", counter);
    r->add_orchestrator("catches", catches);
    r->add_orchestrator("does_not_catch", does_not_catch);
    r->add_orchestrator("waits_forever", waits_forever);
    r->add_orchestrator("slow_steps", slow_steps);
    r->add_orchestrator("durable_retry", [](OrchestrationContext& ctx, int fail_times) -> Task<std::string> {
        RetryPolicy p;
        p.max_attempts = 5;
        p.first_delay = 300ms;
        p.backoff_coefficient = 1.0;
        co_return co_await ctx.call_activity<std::string>("flaky", fail_times, ActivityOptions{p});
    });
    return r;
}

}  // namespace

TEST_CASE("a three-step chain completes with the right output and history") {
    Engine e(registry());
    auto c = e.client();
    auto id = c.schedule("chain", "world");
    auto s = c.wait_for_completion(id, 10s);
    CHECK(s.status == Status::Completed);
    CHECK(s.output == "hello hello hello world");
    auto h = c.history(id);
    REQUIRE(h.size() == 8);  // started, 3 × (scheduled, completed), completed
    CHECK(h.front().event["t"] == "ExecutionStarted");
    CHECK(h.back().event["t"] == "ExecutionCompleted");
    for (std::size_t i = 0; i < h.size(); ++i) CHECK(h[i].seq == static_cast<std::int64_t>(i));
}

TEST_CASE("fan-out of 100 activities joins all results") {
    Engine e(registry());
    auto c = e.client();
    auto s = c.wait_for_completion(c.schedule("fan_out", 100), 20s);
    REQUIRE(s.status == Status::Completed);
    int expected = 0;
    for (int i = 0; i < 100; ++i) expected += i * i;
    CHECK(s.output == expected);
}

TEST_CASE("when_any: a timer beats a slow activity, a fast activity beats the timer") {
    Engine e(registry());
    auto c = e.client();
    auto slow = c.schedule("race", 1000);
    auto fast = c.schedule("race", 1);
    CHECK(c.wait_for_completion(slow, 10s).output == "timeout");
    CHECK(c.wait_for_completion(fast, 10s).output == "done");
}

TEST_CASE("external events: delivered, buffered before the wait, and timed out") {
    Engine e(registry());
    auto c = e.client();
    auto answered = c.schedule("approval", 10'000);
    auto ignored = c.schedule("approval", 150);
    std::this_thread::sleep_for(50ms);
    c.raise_event(answered, "answer", "yes");
    CHECK(c.wait_for_completion(answered, 10s).output == "got yes");
    CHECK(c.wait_for_completion(ignored, 10s).output == "escalated");

    // Both events raised before the orchestration waits for the second one.
    auto both = c.schedule("two_events");
    c.raise_event(both, "b", 2);
    c.raise_event(both, "a", 1);
    CHECK(c.wait_for_completion(both, 10s).output == Json{1, 2});

    CHECK_THROWS_AS(c.raise_event("no-such-instance", "answer", 1), InstanceNotFound);
    CHECK_THROWS_AS(c.raise_event(answered, "answer", "late"), InvalidInput);
}

TEST_CASE("sub-orchestrations three deep") {
    Engine e(registry());
    auto c = e.client();
    auto id = c.schedule("nested", 3);
    auto s = c.wait_for_completion(id, 10s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 12);
    QueryFilter f;
    f.name = "nested";
    CHECK(c.query(f, 100).instances.size() == 4);
}

TEST_CASE("continue-as-new 100 times keeps history short") {
    Engine e(registry());
    auto c = e.client();
    auto id = c.schedule("counter", 1);
    auto s = c.wait_for_completion(id, 60s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 100);
    CHECK(s.input == 100);
    auto h = c.history(id);
    CHECK(h.size() == 4);  // only the last generation: started, scheduled, completed, completed
}

TEST_CASE("activity failures: caught by the orchestrator, or failing the instance") {
    Engine e(registry());
    auto c = e.client();
    auto caught = c.wait_for_completion(c.schedule("catches"), 10s);
    CHECK(caught.status == Status::Completed);
    CHECK(caught.output.get<std::string>().find("kaboom") != std::string::npos);
    auto failed = c.wait_for_completion(c.schedule("does_not_catch"), 10s);
    CHECK(failed.status == Status::Failed);
    CHECK(failed.error["type"] == "TaskFailed");
    CHECK(failed.error["message"].get<std::string>().find("kaboom") != std::string::npos);
}

TEST_CASE("terminate, suspend and resume") {
    Engine e(registry());
    auto c = e.client();
    auto t = c.schedule("waits_forever");
    std::this_thread::sleep_for(50ms);
    c.terminate(t, "no longer needed");
    auto s = c.wait_for_completion(t, 10s);
    CHECK(s.status == Status::Terminated);
    CHECK(s.output == "no longer needed");
    CHECK_THROWS_AS(c.terminate(t, "again"), InvalidInput);

    auto p = c.schedule("two_events");
    std::this_thread::sleep_for(50ms);
    c.suspend(p, "maintenance");
    for (int i = 0; i < 200 && c.get_status(p)->status != Status::Suspended; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(c.get_status(p)->status == Status::Suspended);
    c.raise_event(p, "a", 1);
    c.raise_event(p, "b", 2);
    std::this_thread::sleep_for(100ms);
    CHECK(c.get_status(p)->status == Status::Suspended);  // events wait while suspended
    c.resume(p, "done");
    auto r = c.wait_for_completion(p, 10s);
    CHECK(r.status == Status::Completed);
    CHECK(r.output == Json{1, 2});
}

TEST_CASE("purge removes finished instances only") {
    Engine e(registry());
    auto c = e.client();
    auto done = c.schedule("chain", "x");
    c.wait_for_completion(done, 10s);
    auto running = c.schedule("waits_forever");
    CHECK_THROWS_AS(c.purge(running), InvalidInput);
    CHECK(c.purge(done));
    CHECK_FALSE(c.get_status(done).has_value());
    CHECK_THROWS_AS(c.history(done), InstanceNotFound);  // as every other call on a purged id
    CHECK_FALSE(c.purge(done));
    for (int i = 0; i < 5; ++i) c.wait_for_completion(c.schedule("chain", "y"), 10s);
    CHECK(c.purge({Status::Completed}, std::chrono::system_clock::now() + 1s) == 5);
}

TEST_CASE("query filters by status and name, with paging") {
    Engine e(registry());
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 25; ++i) ids.push_back(c.schedule("chain", std::to_string(i)));
    for (auto& id : ids) c.wait_for_completion(id, 10s);
    c.schedule("waits_forever");
    QueryFilter f;
    f.statuses = {Status::Completed};
    f.name = "chain";
    std::set<std::string> seen;
    std::optional<std::string> after;
    int pages = 0;
    do {
        auto page = c.query(f, 10, after);
        for (auto& s : page.instances) {
            CHECK(s.status == Status::Completed);
            seen.insert(s.id);
        }
        after = page.next;
        ++pages;
    } while (after && pages < 10);
    CHECK(pages == 3);
    CHECK(seen.size() == 25);
    CHECK(seen == std::set<std::string>(ids.begin(), ids.end()));
}

TEST_CASE("scheduling is idempotent on a caller-chosen id, and unknown names are refused") {
    Engine e(registry());
    auto c = e.client();
    ScheduleOptions o;
    o.instance_id = "order-42";
    CHECK(c.schedule("chain", "a", o) == "order-42");
    CHECK(c.schedule("chain", "b", o) == "order-42");
    CHECK(c.wait_for_completion("order-42", 10s).output == "hello hello hello a");
    CHECK(c.history("order-42").size() == 8);
    CHECK_THROWS_AS(c.schedule("no_such_orchestration"), InvalidInput);
    CHECK_THROWS_AS(c.schedule("chain", std::string(300 * 1024, 'x')), InvalidInput);
}

TEST_CASE("a host restart mid-orchestration gives exact results") {
    g_count_calls = 0;
    Engine e(registry());
    auto id = e.client().schedule("slow_steps", 30);
    std::this_thread::sleep_for(150ms);
    e.restart(true);
    auto s = e.client().wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 435);
    auto h = e.client().history(id);
    int completed = 0;
    for (auto& entry : h) completed += entry.event["t"] == "TaskCompleted";
    CHECK(completed == 30);  // each decision recorded exactly once
}

TEST_CASE("a crash (no graceful stop) mid-orchestration is recovered after the lease") {
    Engine e(registry());
    auto id = e.client().schedule("slow_steps", 20);
    std::this_thread::sleep_for(150ms);
    e.restart(false);
    auto s = e.client().wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 190);
}

TEST_CASE("eviction from the cache is followed by a correct replay") {
    HostOptions o;
    o.max_cached_instances = 1;
    Engine e(registry(), o);
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(c.schedule("two_events"));
    std::this_thread::sleep_for(1500ms);  // eviction sweeps run each second
    for (auto& id : ids) c.raise_event(id, "a", 1);
    std::this_thread::sleep_for(1200ms);
    for (auto& id : ids) c.raise_event(id, "b", 2);
    for (auto& id : ids) CHECK(c.wait_for_completion(id, 20s).output == Json{1, 2});
    CHECK(e.host->stats().replays > 0);
}

TEST_CASE("a durable retry survives a host restart in the middle of its back-off") {
    g_flaky_calls = 0;
    Engine e(registry());
    auto id = e.client().schedule("durable_retry", 2);
    // The first attempt fails at once; the retry waits 300 ms on a durable timer. Restart once
    // that timer is in history (before, the first attempt itself could run again).
    auto has_timer = [&] {
        for (auto& entry : e.client().history(id)) {
            if (entry.event["t"] == "TimerCreated") return true;
        }
        return false;
    };
    for (int i = 0; i < 400 && !has_timer(); ++i) std::this_thread::sleep_for(5ms);
    REQUIRE(has_timer());
    e.restart(true);
    auto s = e.client().wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == "ok");
    CHECK(g_flaky_calls.load() >= 3);  // an attempt in flight at the restart may run again
    int timers = 0;
    for (auto& entry : e.client().history(id)) timers += entry.event["t"] == "TimerCreated";
    CHECK(timers == 2);
}

TEST_CASE("non-determinism: changed orchestrator code fails the instance naming the event") {
    auto v1 = registry();
    v1->add_orchestrator("versioned", [](OrchestrationContext& ctx) -> Task<Json> {
        co_await ctx.call_activity<std::string>("hello", std::string("v1"));
        co_return co_await ctx.wait_for_external_event<int>("a");
    });
    Engine e(v1);
    auto id = e.client().schedule("versioned");
    for (int i = 0; i < 200 && e.client().history(id).size() < 3; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(e.client().history(id).size() == 3);
    e.host->stop();
    e.host.reset();
    // Version 2 calls a different activity first: history holds 'hello' for task 0.
    auto v2 = registry();
    v2->add_orchestrator("versioned", [](OrchestrationContext& ctx) -> Task<Json> {
        co_await ctx.call_activity<int>("square", 2);
        co_return co_await ctx.wait_for_external_event<int>("a");
    });
    e.registry = v2;
    e.restart(true);
    e.client().raise_event(id, "a", 1);
    auto s = e.client().wait_for_completion(id, 10s);
    CHECK(s.status == Status::Failed);
    CHECK(s.error["type"] == "NonDeterminism");
    CHECK(s.error["message"].get<std::string>().find("square") != std::string::npos);
}

TEST_CASE("one correlation id covers every episode and activity span, sub-orchestrations included") {
    auto spans = std::make_shared<std::vector<Span>>();
    auto mu = std::make_shared<std::mutex>();
    HostOptions o;
    o.span_sink = [spans, mu](const Span& s) {
        std::lock_guard lock(*mu);
        spans->push_back(s);
    };
    Engine e(registry(), o);
    auto c = e.client();
    ScheduleOptions so;
    so.correlation_id = "trace-7";
    auto id = c.schedule("nested", 2, so);
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    std::lock_guard lock(*mu);
    std::set<std::string> instances;
    int activities = 0;
    for (auto& s : *spans) {
        CHECK(s.correlation_id == "trace-7");
        CHECK(s.host_id == e.host->id());
        instances.insert(s.instance_id);
        activities += s.name == "activity:square";
    }
    CHECK(instances.size() == 3);
    CHECK(activities == 1);
    CHECK(e.host->metrics_text().find("durable_episodes_total") != std::string::npos);
}

TEST_CASE("watch streams an instance's events live, in order, until it finishes") {
    Engine e(registry());
    auto c = e.client();
    auto id = c.schedule("two_events");
    std::vector<std::string> types;
    std::int64_t expected_seq = 0;
    bool in_order = true;
    std::thread raiser([&] {
        std::this_thread::sleep_for(100ms);
        c.raise_event(id, "a", 1);
        c.raise_event(id, "b", 2);
    });
    c.watch(
        id,
        [&](const HistoryEntry& h) {
            in_order = in_order && h.seq == expected_seq++;
            types.push_back(h.event["t"]);
            return true;
        },
        0, 10s);
    raiser.join();
    CHECK(in_order);
    REQUIRE(types.size() == 4);
    CHECK(types.front() == "ExecutionStarted");
    CHECK(types.back() == "ExecutionCompleted");
}

TEST_CASE("an activity refused by an open circuit breaker is retried durably after the break") {
    auto r = registry();
    static std::atomic<int> calls{0};
    calls = 0;
    ResiliencePolicy policy;
    CircuitBreakerOptions breaker;
    breaker.failure_threshold = 1;
    breaker.break_duration = 300ms;
    policy.breaker = breaker;
    r->add_activity(
        "fragile",
        [](int) -> std::string {
            if (calls.fetch_add(1) == 0) throw std::runtime_error("dependency down");
            return "recovered";
        },
        ActivitySettings{policy});
    r->add_orchestrator("uses_fragile", [](OrchestrationContext& ctx) -> Task<std::string> {
        RetryPolicy p;
        p.max_attempts = 6;
        p.first_delay = 150ms;
        p.backoff_coefficient = 1.0;
        co_return co_await ctx.call_activity<std::string>("fragile", 1, ActivityOptions{p});
    });
    Engine e(r);
    auto c = e.client();
    auto s = c.wait_for_completion(c.schedule("uses_fragile"), 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == "recovered");
    int failures = 0;
    bool breaker_refused = false;
    for (auto& h : c.history(s.id)) {
        if (h.event["t"] == "TaskFailed") {
            ++failures;
            breaker_refused = breaker_refused || h.event["error"]["type"].get<std::string>().find("CircuitOpen") != std::string::npos;
        }
    }
    CHECK(failures >= 2);      // the real failure, then at least one refusal while open
    CHECK(breaker_refused);
    CHECK(calls.load() == 2);  // the breaker kept the refused attempts from reaching the activity
}
