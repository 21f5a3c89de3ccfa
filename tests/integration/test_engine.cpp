// The engine against both stores (a real SQLite file, a real PostgreSQL database): every
// orchestration API, restarts, eviction, non-determinism, durable retries.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
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

// Continues as new `n` times before it awaits anything, then runs one activity.
Task<int> restarts(OrchestrationContext& ctx, int n) {
    if (n > 0) {
        ctx.continue_as_new(n - 1);
        co_return 0;
    }
    co_return co_await ctx.call_activity<int>("square", 4);
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
    r->add_orchestrator("restarts", restarts);
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

// Waits (bounded) until `id`'s history holds at least `n` completed activities.
bool wait_for_completed_tasks(Client c, const std::string& id, int n) {
    for (int i = 0; i < 2000; ++i) {
        int completed = 0;
        for (auto& h : c.history(id)) completed += h.type() == EventType::TaskCompleted;
        if (completed >= n) return true;
        std::this_thread::sleep_for(5ms);
    }
    return false;
}

bool wait_until(const std::function<bool()>& ok, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (ok()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return ok();
}

}  // namespace

TEST_CASE_TEMPLATE("a three-step chain completes with the right output and history", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("fan-out of 100 activities joins all results", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto s = c.wait_for_completion(c.schedule("fan_out", 100), 20s);
    REQUIRE(s.status == Status::Completed);
    int expected = 0;
    for (int i = 0; i < 100; ++i) expected += i * i;
    CHECK(s.output == expected);
}

TEST_CASE_TEMPLATE("when_any: a timer beats a slow activity, a fast activity beats the timer", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto slow = c.schedule("race", 1000);
    auto fast = c.schedule("race", 1);
    CHECK(c.wait_for_completion(slow, 10s).output == "timeout");
    CHECK(c.wait_for_completion(fast, 10s).output == "done");
}

TEST_CASE_TEMPLATE("external events: delivered, buffered before the wait, and timed out", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("sub-orchestrations three deep", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto id = c.schedule("nested", 3);
    auto s = c.wait_for_completion(id, 10s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 12);
    QueryFilter f;
    f.name = "nested";
    CHECK(c.query(f, 100).instances.size() == 4);
}

TEST_CASE_TEMPLATE("continue-as-new 100 times keeps history short", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto id = c.schedule("counter", 1);
    auto s = c.wait_for_completion(id, 60s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 100);
    CHECK(s.input == 100);
    auto h = c.history(id);
    CHECK(h.size() == 4);  // only the last generation: started, scheduled, completed, completed
}

// It stalled Running: an episode followed one continue-as-new, not a second in a row.
TEST_CASE_TEMPLATE("continue-as-new several times in a row without awaiting anything completes", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto id = c.schedule("restarts", 3);
    auto s = c.wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 16);
    CHECK(s.input == 0);
    CHECK(c.history(id).size() == 4);  // the last generation only
}

TEST_CASE_TEMPLATE("activity failures: caught by the orchestrator, or failing the instance", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto caught = c.wait_for_completion(c.schedule("catches"), 10s);
    CHECK(caught.status == Status::Completed);
    CHECK(caught.output.template get<std::string>().find("kaboom") != std::string::npos);
    auto failed = c.wait_for_completion(c.schedule("does_not_catch"), 10s);
    CHECK(failed.status == Status::Failed);
    CHECK(failed.error["type"] == "TaskFailed");
    CHECK(failed.error["message"].template get<std::string>().find("kaboom") != std::string::npos);
}

TEST_CASE_TEMPLATE("an output or an activity input over max_payload_bytes fails the instance with PayloadTooLarge", S,
                   DURABLE_TEST_STORES) {
    auto reg = std::make_shared<Registry>();
    reg->add_activity("echo", [](std::string s) { return s; });
    reg->add_orchestrator("big_output", [](OrchestrationContext&, int n) -> Task<std::string> {
        co_return std::string(static_cast<std::size_t>(n), 'x');
    });
    reg->add_orchestrator("big_input", [](OrchestrationContext& ctx, int n) -> Task<std::string> {
        co_return co_await ctx.call_activity<std::string>("echo", std::string(static_cast<std::size_t>(n), 'y'));
    });
    HostOptions o;
    o.max_payload_bytes = 1000;
    durable::test::EngineOn<S> e(reg, o);
    auto c = e.client();
    auto small = c.wait_for_completion(c.schedule("big_output", 10), 10s);
    CHECK(small.status == Status::Completed);
    CHECK(small.output == std::string(10, 'x'));
    auto out = c.wait_for_completion(c.schedule("big_output", 2000), 10s);
    REQUIRE(out.status == Status::Failed);
    CHECK(out.error["type"] == "PayloadTooLarge");
    CHECK(out.error["message"].template get<std::string>().find("1000-byte limit") != std::string::npos);
    CHECK(out.output.is_null());
    auto in = c.wait_for_completion(c.schedule("big_input", 2000), 10s);
    REQUIRE(in.status == Status::Failed);
    CHECK(in.error["type"] == "PayloadTooLarge");
}

TEST_CASE_TEMPLATE("terminate, suspend and resume", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("purge removes finished instances only", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("query filters by status and name, with paging", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("scheduling is idempotent on a caller-chosen id, and unknown names are refused", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    ScheduleOptions o;
    o.instance_id = "order-42";
    CHECK(c.schedule("chain", "a", o) == "order-42");
    CHECK(c.schedule("chain", "b", o) == "order-42");
    CHECK(c.wait_for_completion("order-42", 10s).output == "hello hello hello a");
    CHECK(c.history("order-42").size() == 8);
    CHECK_THROWS_AS(c.schedule("no_such_orchestration"), UnknownOrchestration);
    CHECK_THROWS_AS(c.schedule("chain", std::string(300 * 1024, 'x')), InvalidInput);
}

TEST_CASE_TEMPLATE("a host restart mid-orchestration gives exact results", S, DURABLE_TEST_STORES) {
    g_count_calls = 0;
    durable::test::EngineOn<S> e(registry());
    auto id = e.client().schedule("slow_steps", 30);
    // Restart once a few steps are recorded: the rest (27 steps, each behind a 20 ms timer)
    // runs on the new host.
    REQUIRE(wait_for_completed_tasks(e.client(), id, 3));
    REQUIRE_FALSE(is_terminal(e.client().get_status(id)->status));
    e.restart(true);
    auto s = e.client().wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 435);
    auto h = e.client().history(id);
    int completed = 0;
    for (auto& entry : h) completed += entry.event["t"] == "TaskCompleted";
    CHECK(completed == 30);  // each decision recorded exactly once
}

TEST_CASE_TEMPLATE("a crash (no graceful stop) mid-orchestration is recovered after the lease", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto id = e.client().schedule("slow_steps", 20);
    REQUIRE(wait_for_completed_tasks(e.client(), id, 3));
    REQUIRE_FALSE(is_terminal(e.client().get_status(id)->status));
    e.restart(false);
    auto s = e.client().wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == 190);
}

TEST_CASE_TEMPLATE("eviction from the cache is followed by a correct replay", S, DURABLE_TEST_STORES) {
    HostOptions o;
    o.max_cached_instances = 1;
    durable::test::EngineOn<S> e(registry(), o);
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(c.schedule("two_events"));
    // Each instance has started (and waits for "a"); the sweep (each second) evicts all but one.
    auto started_all = [&] {
        for (auto& id : ids) {
            if (c.history(id).size() < 1) return false;
        }
        return true;
    };
    REQUIRE(wait_until([&] { return started_all() && e.host->stats().cached <= 1; }, 20s));
    for (auto& id : ids) c.raise_event(id, "a", 1);
    // Each has taken "a" (replayed from history when it was evicted), and is evicted again.
    auto took_a = [&] {
        for (auto& id : ids) {
            if (c.history(id).size() < 2) return false;
        }
        return true;
    };
    REQUIRE(wait_until([&] { return took_a() && e.host->stats().cached <= 1; }, 20s));
    CHECK(e.host->stats().replays > 0);
    for (auto& id : ids) c.raise_event(id, "b", 2);
    for (auto& id : ids) CHECK(c.wait_for_completion(id, 20s).output == Json{1, 2});
    CHECK(e.host->stats().replays > 0);
}

TEST_CASE_TEMPLATE("a durable retry survives a host restart in the middle of its back-off", S, DURABLE_TEST_STORES) {
    g_flaky_calls = 0;
    durable::test::EngineOn<S> e(registry());
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

TEST_CASE_TEMPLATE("non-determinism: changed orchestrator code fails the instance naming the event", S, DURABLE_TEST_STORES) {
    auto v1 = registry();
    v1->add_orchestrator("versioned", [](OrchestrationContext& ctx) -> Task<Json> {
        co_await ctx.call_activity<std::string>("hello", std::string("v1"));
        co_return co_await ctx.wait_for_external_event<int>("a");
    });
    durable::test::EngineOn<S> e(v1);
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
    CHECK(s.error["message"].template get<std::string>().find("square") != std::string::npos);
}

TEST_CASE_TEMPLATE("one correlation id covers every episode and activity span, sub-orchestrations included", S, DURABLE_TEST_STORES) {
    auto spans = std::make_shared<std::vector<Span>>();
    auto mu = std::make_shared<std::mutex>();
    HostOptions o;
    o.span_sink = [spans, mu](const Span& s) {
        std::lock_guard lock(*mu);
        spans->push_back(s);
    };
    durable::test::EngineOn<S> e(registry(), o);
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

TEST_CASE_TEMPLATE("watch streams an instance's events live, in order, until it finishes", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    auto id = c.schedule("two_events");
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> types;  // guarded by mu
    std::int64_t expected_seq = 0;
    bool in_order = true;
    WatchEnd end = WatchEnd::TimedOut;
    std::thread watcher([&] {
        end = c.watch(
            id,
            [&](const HistoryEntry& h) {
                std::lock_guard lock(mu);
                in_order = in_order && h.seq == expected_seq++;
                types.push_back(std::string(to_string(h.type())));
                cv.notify_all();
                return true;
            },
            0, 20s);
    });
    auto seen = [&](const std::string& type) {
        std::unique_lock lock(mu);
        return cv.wait_for(lock, 10s, [&] { return std::find(types.begin(), types.end(), type) != types.end(); });
    };
    // "a" must reach the watcher while the instance still waits for "b": live, from the
    // process's change-feed distributor (the store is read again only when the instance finishes).
    // (CHECKs only until the watcher is joined: both events are raised whatever happens.)
    CHECK(seen("ExecutionStarted"));
    c.raise_event(id, "a", 1);
    CHECK(seen("EventRaised"));
    CHECK_FALSE(is_terminal(c.get_status(id)->status));
    c.raise_event(id, "b", 2);
    watcher.join();
    CHECK(end == WatchEnd::Finished);
    CHECK(in_order);
    REQUIRE(types.size() == 4);
    CHECK(types.front() == "ExecutionStarted");
    CHECK(types.back() == "ExecutionCompleted");
}

TEST_CASE_TEMPLATE("an activity refused by an open circuit breaker is retried durably after the break", S, DURABLE_TEST_STORES) {
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
    durable::test::EngineOn<S> e(r);
    auto c = e.client();
    auto s = c.wait_for_completion(c.schedule("uses_fragile"), 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output == "recovered");
    int failures = 0;
    bool breaker_refused = false;
    for (auto& h : c.history(s.id)) {
        if (h.event["t"] == "TaskFailed") {
            ++failures;
            breaker_refused = breaker_refused || h.event["error"]["type"].template get<std::string>().find("CircuitOpen") != std::string::npos;
        }
    }
    CHECK(failures >= 2);      // the real failure, then at least one refusal while open
    CHECK(breaker_refused);
    CHECK(calls.load() == 2);  // the breaker kept the refused attempts from reaching the activity
}

namespace {

// A payment activity that fails with a nested cause, and orchestrators around it.
std::shared_ptr<Registry> failing_registry() {
    auto r = registry();
    r->add_activity("charge", [](int) -> std::string {
        try {
            throw std::invalid_argument("card 4242 expired");
        } catch (...) {
            std::throw_with_nested(std::runtime_error("card declined"));
        }
    });
    // Catches the failure, then waits for an event so a restart replays the catch.
    r->add_orchestrator("catches_then_waits", [](OrchestrationContext& ctx) -> Task<Json> {
        Json seen;
        try {
            co_await ctx.call_activity<std::string>("charge", 1);
        } catch (const TaskFailed& e) {
            seen = failure_to_json(e.failure());
            seen["what"] = e.what();
            seen["task_name"] = e.task_name();
        }
        co_await ctx.wait_for_external_event<int>("go");
        co_return seen;
    });
    r->add_orchestrator("pays", [](OrchestrationContext& ctx) -> Task<std::string> {
        co_return co_await ctx.call_activity<std::string>("charge", 1);
    });
    r->add_orchestrator("checkout", [](OrchestrationContext& ctx) -> Task<std::string> {
        co_return co_await ctx.call_sub_orchestration<std::string>("pays");
    });
    return r;
}

}  // namespace

TEST_CASE("failures carry their type, message, task and inner failure, in the exception and the instance's error") {
    Engine e(failing_registry());
    auto c = e.client();
    ScheduleOptions o;
    o.instance_id = "catcher";
    c.schedule("catches_then_waits", Json(), o);
    // Once the failure is in history, restart: the orchestrator's catch runs again on replay.
    auto failed_in_history = [&] {
        for (auto& h : c.history("catcher")) {
            if (h.type() == EventType::TaskFailed) return true;
        }
        return false;
    };
    for (int i = 0; i < 1000 && !failed_in_history(); ++i) std::this_thread::sleep_for(5ms);
    REQUIRE(failed_in_history());
    e.restart(true);
    c = e.client();
    c.raise_event("catcher", "go", 1);
    auto caught = c.wait_for_completion("catcher", 10s);
    REQUIRE(caught.status == Status::Completed);
    const Json& f = caught.output;
    CHECK(f["type"] == "std::runtime_error");
    CHECK(f["message"] == "card declined");
    CHECK(f["what"] == "card declined");
    CHECK(f["task_name"] == "charge");
    CHECK(f["task"]["kind"] == "activity");
    CHECK(f["task"]["name"] == "charge");
    CHECK(f["task"]["id"] == 0);
    CHECK(f["inner"]["type"] == "std::invalid_argument");
    CHECK(f["inner"]["message"] == "card 4242 expired");
    CHECK(e.host->stats().replays > 0);  // the details above came through a replay

    // Uncaught: the instance's error names the activity and keeps the exception as inner.
    auto paid = c.wait_for_completion(c.schedule("pays"), 10s);
    REQUIRE(paid.status == Status::Failed);
    auto err = failure_from_json(paid.error);
    CHECK(err.type == "TaskFailed");
    CHECK(err.task_kind == "activity");
    CHECK(err.task_name == "charge");
    CHECK(err.message.find("activity 'charge' (task 0) failed: card declined") != std::string::npos);
    REQUIRE(err.inner);
    CHECK(err.inner->type == "std::runtime_error");
    REQUIRE(err.inner->inner);
    CHECK(err.inner->inner->type == "std::invalid_argument");

    // Through a sub-orchestration: the parent's error names the child, the child's error is inside.
    auto checkout = c.wait_for_completion(c.schedule("checkout"), 10s);
    REQUIRE(checkout.status == Status::Failed);
    auto top = failure_from_json(checkout.error);
    CHECK(top.task_kind == "sub-orchestration");
    CHECK(top.task_name == "pays");
    CHECK_FALSE(top.task_instance_id.empty());
    REQUIRE(top.inner);
    REQUIRE(top.inner->inner);  // the child's error, whose inner is its failed activity
    CHECK(top.inner->inner->task_name == "charge");
    bool found = false;
    for (const FailureDetails* d = &top; d; d = d->inner.get()) found = found || d->type == "std::invalid_argument";
    CHECK(found);  // the root cause survives two levels of wrapping
}

TEST_CASE("history entries have a public event type and typed fields") {
    Engine e(failing_registry());
    auto c = e.client();
    auto id = c.schedule("chain", "x");
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    auto h = c.history(id);
    REQUIRE(h.size() == 8);
    CHECK(h[0].type() == EventType::ExecutionStarted);
    CHECK(h[0].name() == "chain");
    CHECK(h[0].input() == "x");
    CHECK_FALSE(h[0].task_id());
    CHECK(h[1].type() == EventType::TaskScheduled);
    CHECK(h[1].task_id() == 0);
    CHECK(h[1].name() == "hello");
    CHECK(h[2].type() == EventType::TaskCompleted);
    CHECK(h[2].task_id() == 0);
    CHECK(h[2].result() == "hello x");
    CHECK(h[2].timestamp_ms() >= h[0].timestamp_ms());
    CHECK(h[2].timestamp() >= h[0].timestamp());
    CHECK(h.back().type() == EventType::ExecutionCompleted);
    CHECK(h.back().final_status() == Status::Completed);
    CHECK(h.back().result() == "hello hello hello x");
    CHECK(to_string(EventType::TimerFired) == "TimerFired");
    CHECK(event_type_from_string("SubOrchestrationFailed") == EventType::SubOrchestrationFailed);
    CHECK(event_type_from_string("FromTheFuture") == EventType::Unknown);

    auto failed = c.wait_for_completion(c.schedule("pays"), 10s);
    auto fh = c.history(failed.id);
    bool task_failed = false;
    for (auto& entry : fh) {
        if (entry.type() != EventType::TaskFailed) continue;
        task_failed = true;
        auto f = entry.failure();
        REQUIRE(f);
        CHECK(f->type == "std::runtime_error");
        REQUIRE(f->inner);
        CHECK(f->inner->message == "card 4242 expired");
    }
    CHECK(task_failed);
    CHECK(fh.back().final_status() == Status::Failed);
    CHECK(fh.back().failure()->task_name == "charge");
}

TEST_CASE("history of an unknown or purged id throws InstanceNotFound, as every other call does") {
    Engine e(registry());
    auto c = e.client();
    CHECK_THROWS_AS(c.history("never-scheduled"), InstanceNotFound);
    CHECK_THROWS_AS(c.watch("never-scheduled", [](const HistoryEntry&) { return true; }, 0, 100ms), InstanceNotFound);
    auto id = c.schedule("chain", "x");
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    CHECK(c.history(id, 100).empty());  // known, nothing past seq 100
    REQUIRE(c.purge(id));
    CHECK_THROWS_AS(c.history(id), InstanceNotFound);
}

TEST_CASE("IfExists: return answers the existing instance, fail refuses, restart replaces a finished one") {
    Engine e(registry());
    auto c = e.client();
    ScheduleOptions o;
    o.instance_id = "reused";
    auto first = c.schedule_with_result("waits_forever", Json(), o);
    CHECK(first.created);
    CHECK_FALSE(first.replaced);
    auto again = c.schedule_with_result("chain", "other input", o);
    CHECK_FALSE(again.created);
    CHECK(again.id == "reused");
    CHECK(c.get_status("reused")->name == "waits_forever");
    o.if_exists = IfExists::Fail;
    CHECK_THROWS_AS(c.schedule("chain", "x", o), InstanceExists);
    o.if_exists = IfExists::Restart;
    CHECK_THROWS_AS(c.schedule("chain", "x", o), InstanceExists);  // still running
    c.terminate("reused", "done with it");
    REQUIRE(c.wait_for_completion("reused", 10s).status == Status::Terminated);
    auto restarted = c.schedule_with_result("chain", "x", o);
    CHECK(restarted.created);
    CHECK(restarted.replaced);
    // A waiter of this process must not take the old instance's end for the new one's.
    auto s = c.wait_for_completion("reused", 10s);
    CHECK(s.status == Status::Completed);
    CHECK(s.output == "hello hello hello x");
    auto h = c.history("reused");
    CHECK(h.front().name() == "chain");  // the old history went with the old instance
    CHECK(h.size() == 8);
    CHECK_THROWS_AS(c.schedule("no_such_orchestration"), UnknownOrchestration);
    ScheduleOptions empty_id;
    empty_id.instance_id = "";
    CHECK_THROWS_AS(c.schedule("chain", "x", empty_id), InvalidInput);
    ScheduleOptions bad_id;
    bad_id.instance_id = std::string("id\xC0\x80");
    CHECK_THROWS_WITH_AS(c.schedule("chain", "x", bad_id), doctest::Contains("instance id is not valid UTF-8"),
                         InvalidInput);
    CHECK_THROWS_WITH_AS(c.raise_event(first.id, std::string("e\xFF")), doctest::Contains("event name"),
                         InvalidInput);
}

TEST_CASE("hosts, leases and statistics are read through the public API") {
    Engine e(registry());
    auto c = e.client();
    auto id = c.schedule("waits_forever");
    bool held = false;
    for (int i = 0; i < 1000 && !held; ++i) {
        for (auto& l : c.leases()) held = held || (l.instance_id == id && l.owner == e.host->id());
        if (!held) std::this_thread::sleep_for(5ms);
    }
    CHECK(held);
    bool listed = false;
    for (int i = 0; i < 1000 && !listed; ++i) {
        for (auto& h : c.hosts()) listed = listed || (h.id == e.host->id() && !h.stopped_at_ms && h.pid == getpid());
        if (!listed) std::this_thread::sleep_for(5ms);
    }
    CHECK(listed);
    CHECK(e.db.stats().commits > 0);
    CHECK(e.db.stats().writes >= e.db.stats().commits);
}
