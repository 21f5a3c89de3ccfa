// The engine against real SQLite files: chaining, fan-out, failures, events, timers.
#include <doctest/doctest.h>

#include <atomic>

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

std::shared_ptr<Registry> basic_registry() {
    auto r = std::make_shared<Registry>();
    r->add_activity("hello", [](std::string s) { return "hello " + s; });
    r->add_orchestrator("chain", chain);
    return r;
}

}  // namespace

TEST_CASE("a three-step chain completes with the right output") {
    Engine e(basic_registry());
    auto c = e.client();
    auto id = c.schedule("chain", "world");
    auto s = c.wait_for_completion(id, 10s);
    CHECK(s.status == Status::Completed);
    CHECK(s.output == "hello hello hello world");
    auto h = c.history(id);
    REQUIRE(!h.empty());
    CHECK(h.front().event["t"] == "ExecutionStarted");
    CHECK(h.back().event["t"] == "ExecutionCompleted");
}
