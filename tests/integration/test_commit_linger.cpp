// HostOptions::commit_linger: an episode's commit waits for the next episode of its instance
// while that instance's activities run on the host, so a chain of quick activities is one
// write; it never waits past the linger time, and a graceful stop writes what is waiting.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "runtime/database_access.hpp"
#include "store/store.hpp"
#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Engine;

namespace {

std::atomic<bool> g_gate_open{false};
std::atomic<int> g_gate_entered{0};
std::atomic<int> g_until_stopped_calls{0};

std::shared_ptr<Registry> registry() {
    auto r = std::make_shared<Registry>();
    r->add_activity("hello", [](std::string s) { return "hello " + s; });
    r->add_activity("sleepy", [](int ms) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return std::string("slept");
    });
    // Blocks until the test opens the gate (at most 10 s).
    r->add_activity("gate", [](int) {
        ++g_gate_entered;
        auto until = std::chrono::steady_clock::now() + 10s;
        while (!g_gate_open.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
        return std::string("opened");
    });
    r->add_orchestrator("chain5", [](OrchestrationContext& ctx, std::string s) -> Task<std::string> {
        for (int i = 0; i < 5; ++i) s = co_await ctx.call_activity<std::string>("hello", s);
        co_return s;
    });
    r->add_orchestrator("then_gate", [](OrchestrationContext& ctx, std::string s) -> Task<std::string> {
        auto a = co_await ctx.call_activity<std::string>("hello", s);
        auto b = co_await ctx.call_activity<std::string>("gate", 0);
        co_return a + " " + b;
    });
    // Its first run lasts until its host stops (at most 10 s); later runs return at once.
    r->add_activity("until_stopped", [](ActivityContext& ctx, int) {
        if (g_until_stopped_calls.fetch_add(1) == 0) {
            auto until = std::chrono::steady_clock::now() + 10s;
            while (!ctx.cancellation().cancelled() && std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(1ms);
            }
        }
        return std::string("slept");
    });
    r->add_orchestrator("then_sleep", [](OrchestrationContext& ctx, std::string s) -> Task<std::string> {
        auto a = co_await ctx.call_activity<std::string>("hello", s);
        auto b = co_await ctx.call_activity<std::string>("until_stopped", 0);
        co_return a + " " + b;
    });
    return r;
}

HostOptions with_linger(std::chrono::microseconds linger) {
    HostOptions o;
    o.lease_duration = 5s;  // no renewal write inside these short tests
    o.commit_linger = linger;
    return o;
}

// Writes the store made while `f` ran (the flush's own empty write not counted).
template <class F>
std::int64_t writes_during(Engine& e, F&& f) {
    auto before = durable::detail::store_of(e.db)->stats().ops;
    f();
    durable::detail::store_of(e.db)->flush();
    return durable::detail::store_of(e.db)->stats().ops - before - 1;
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

TEST_CASE("a chain of quick activities is written as one commit, with the whole history in order") {
    Engine lingering(registry(), with_linger(10s));
    auto c = lingering.client();
    std::string id;
    auto writes = writes_during(lingering, [&] {
        id = c.schedule("chain5", "x");
        auto s = c.wait_for_completion(id, 10s);
        REQUIRE(s.status == Status::Completed);
        CHECK(s.output == "hello hello hello hello hello x");
    });
    CHECK(writes == 2);  // the create, then all six episodes in one CAS
    auto h = c.history(id);
    REQUIRE(h.size() == 12);  // started, 5 x (scheduled, completed), completed
    for (std::size_t i = 0; i < h.size(); ++i) CHECK(h[i].seq == static_cast<std::int64_t>(i));
    CHECK(h.back().event["t"] == "ExecutionCompleted");

    // Without linger every episode is its own write.
    Engine eager(registry(), with_linger(0us), "eager.db");
    auto c2 = eager.client();
    auto eager_writes = writes_during(eager, [&] {
        auto s = c2.wait_for_completion(c2.schedule("chain5", "x"), 10s);
        REQUIRE(s.status == Status::Completed);
    });
    CHECK(eager_writes == 7);
}

TEST_CASE("a lingering commit is written after the linger time while a long activity still runs") {
    g_gate_open = false;
    g_gate_entered = 0;
    Engine e(registry(), with_linger(50ms));
    auto c = e.client();
    auto id = c.schedule("then_gate", "y");
    REQUIRE(wait_until([&] { return g_gate_entered.load() > 0; }, 5s));
    // The gate is closed, so no episode comes to carry the commit: the dispatcher's flush does.
    CHECK(wait_until([&] { return c.history(id).size() == 4; }, 5s));  // started, hello x2, gate scheduled
    auto s = c.get_status(id);
    REQUIRE(s);
    CHECK(s->status == Status::Running);
    g_gate_open = true;
    auto done = c.wait_for_completion(id, 10s);
    CHECK(done.status == Status::Completed);
    CHECK(done.output == "hello y opened");
}

TEST_CASE("a graceful stop writes the lingering commits, and the next host goes on from them") {
    g_until_stopped_calls = 0;
    Engine e(registry(), with_linger(60s));
    auto c = e.client();
    auto id = c.schedule("then_sleep", "z");
    // "hello" is done and "until_stopped" runs (until the stop): nothing is written yet.
    REQUIRE(wait_until([&] { return g_until_stopped_calls.load() > 0; }, 10s));
    CHECK(c.history(id).empty());
    e.host->stop();  // cancels "until_stopped", drops its result (stopping), writes the rest
    auto h = c.history(id);
    REQUIRE(h.size() == 4);
    CHECK(h[3].event["t"] == "TaskScheduled");
    e.restart();
    auto c2 = e.client();
    auto s = c2.wait_for_completion(id, 10s);
    CHECK(s.status == Status::Completed);
    CHECK(s.output == "hello z slept");
}
