// Replay of canned histories (tests/data/) against orchestrator code, with no store or host:
// the same code gives the same decisions; changed code gives NonDeterminism naming the event.
#include <doctest/doctest.h>

#include <fstream>
#include <spdlog/spdlog.h>

#include "runtime/execution.hpp"

using namespace durable;
using durable::detail::Execution;

namespace {

std::vector<Json> load_history(const std::string& name) {
    std::ifstream in(std::string(DURABLE_SOURCE_DIR) + "/tests/data/" + name);
    REQUIRE(in.good());
    return Json::parse(in).get<std::vector<Json>>();
}

Task<std::string> chain(OrchestrationContext& ctx, std::string name) {
    auto a = co_await ctx.call_activity<std::string>("hello", name);
    auto b = co_await ctx.call_activity<std::string>("hello", a);
    co_return co_await ctx.call_activity<std::string>("hello", b);
}

Task<std::string> chain_renamed(OrchestrationContext& ctx, std::string name) {
    auto a = co_await ctx.call_activity<std::string>("greet", name);
    co_return a;
}

Task<std::string> chain_shorter(OrchestrationContext& ctx, std::string name) {
    co_return co_await ctx.call_activity<std::string>("hello", name);
}

Task<std::string> chain_timer_first(OrchestrationContext& ctx, std::string name) {
    co_await ctx.create_timer(std::chrono::seconds(1));
    co_return co_await ctx.call_activity<std::string>("hello", name);
}

std::unique_ptr<Execution> make(const Registry& r, const std::string& name = "chain") {
    detail::ExecutionInfo info{"inst-1", name, "e1", std::nullopt, -1, {}};
    return std::make_unique<Execution>(r, info, detail::ExecutionLimits{}, spdlog::default_logger());
}

}  // namespace

TEST_CASE("replaying a canned history gives the recorded decisions, then continues live") {
    Registry r;
    r.add_orchestrator("chain", chain);
    auto ex = make(r);
    ex->replay(load_history("chain_history.json"));
    REQUIRE(ex->state() == Execution::State::Running);
    CHECK(ex->take_new_history().empty());  // nothing new: every decision matched history
    auto redo = ex->take_redispatch();
    REQUIRE(redo.size() == 1);  // task 1 was scheduled and has no result: run it again
    CHECK(redo[0].id == 1);
    CHECK(redo[0].name == "hello");
    CHECK(redo[0].input == "hello world");

    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 1}, {"result", "hello hello world"}, {"x", "e1"}}, 5);
    auto decisions = ex->take_decisions();
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0].id == 2);
    CHECK(decisions[0].input == "hello hello world");
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 2}, {"result", "done"}, {"x", "e1"}}, 6);
    CHECK(ex->state() == Execution::State::Completed);
    CHECK(ex->output() == "done");
    auto h = ex->take_new_history();
    CHECK(h.back()["t"] == "ExecutionCompleted");
}

TEST_CASE("a renamed activity is reported as non-determinism naming both sides") {
    Registry r;
    r.add_orchestrator("chain", chain_renamed);
    auto ex = make(r);
    ex->replay(load_history("chain_history.json"));
    REQUIRE(ex->state() == Execution::State::Failed);
    CHECK(ex->error()["type"] == "NonDeterminism");
    std::string msg = ex->error()["message"];
    CHECK(msg.find("'hello'") != std::string::npos);
    CHECK(msg.find("'greet'") != std::string::npos);
    CHECK(msg.find("task 0") != std::string::npos);
}

TEST_CASE("code that finishes before its history does is non-determinism naming the event index") {
    Registry r;
    r.add_orchestrator("chain", chain_shorter);
    auto ex = make(r);
    ex->replay(load_history("chain_history.json"));
    REQUIRE(ex->state() == Execution::State::Failed);
    std::string msg = ex->error()["message"];
    CHECK(msg.find("history event #3") != std::string::npos);
}

TEST_CASE("a timer where history holds an activity is non-determinism") {
    Registry r;
    r.add_orchestrator("chain", chain_timer_first);
    auto ex = make(r);
    ex->replay(load_history("chain_history.json"));
    REQUIRE(ex->state() == Execution::State::Failed);
    std::string msg = ex->error()["message"];
    CHECK(msg.find("TimerCreated") != std::string::npos);
    CHECK(msg.find("TaskScheduled 'hello'") != std::string::npos);
}

TEST_CASE("an unknown orchestration name fails with a clear error") {
    Registry r;
    auto ex = make(r, "nope");
    ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "nope"}, {"input", nullptr}}, 1);
    REQUIRE(ex->state() == Execution::State::Failed);
    CHECK(ex->error()["type"] == "UnknownOrchestration");
    CHECK(ex->error()["message"].get<std::string>().find("not registered") != std::string::npos);
}

TEST_CASE("bad input fails the instance with InvalidInput naming the orchestration") {
    Registry r;
    r.add_orchestrator("chain", chain);
    auto ex = make(r);
    ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "chain"}, {"input", Json{{"not", "a string"}}}}, 1);
    REQUIRE(ex->state() == Execution::State::Failed);
    CHECK(ex->error()["type"] == "durable::InvalidInput");
    CHECK(ex->error()["message"].get<std::string>().find("orchestration 'chain'") != std::string::npos);
}

TEST_CASE("completions of an older generation are ignored") {
    Registry r;
    r.add_orchestrator("chain", chain);
    auto ex = make(r);
    ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "chain"}, {"input", "w"}}, 1);
    ex->take_decisions();
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "stale"}, {"x", "old-generation"}}, 2);
    CHECK(ex->take_decisions().empty());
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "fresh"}, {"x", "e1"}}, 3);
    auto d = ex->take_decisions();
    REQUIRE(d.size() == 1);
    CHECK(d[0].input == "fresh");
}

namespace {

// Remote code that is never asked anything (the test drives the execution by hand).
struct SilentRemote : RemoteOrchestrator {
    bool dispatch(RemoteStep, std::function<void(RemoteReply)>) override { return true; }
    void withdraw(const std::string&) override {}
};

std::vector<std::int64_t> completed_ids(const std::vector<Json>& history) {
    std::vector<std::int64_t> ids;
    for (const auto& e : history) {
        if (e["t"] == "TaskCompleted") ids.push_back(e["id"].get<std::int64_t>());
    }
    return ids;
}

}  // namespace

TEST_CASE("a second result for one task (the activity ran twice) is dropped, not recorded, in C++ and remote code") {
    Registry r;
    r.add_orchestrator("chain", chain);
    r.set_default_orchestrator(std::make_shared<SilentRemote>());
    SUBCASE("C++ code") {
        auto ex = make(r);
        ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "chain"}, {"input", "w"}}, 1);
        ex->take_decisions();
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "a"}, {"x", "e1"}}, 2);
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "again"}, {"x", "e1"}}, 3);
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 7}, {"result", "never scheduled"}, {"x", "e1"}}, 3);
        auto d = ex->take_decisions();
        REQUIRE(d.size() == 1);  // task 1, from the first result only
        CHECK(d[0].input == "a");
        CHECK(completed_ids(ex->take_new_history()) == std::vector<std::int64_t>{0});
    }
    SUBCASE("remote code") {
        auto ex = make(r, "elsewhere");
        ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "elsewhere"}, {"input", "w"}}, 1);
        RemoteDecisions step;
        step.scheduled.push_back(Json{{"t", "TaskScheduled"}, {"id", 0}, {"name", "hello"}, {"input", "w"}});
        ex->apply_remote(step, 2);
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "a"}, {"x", "e1"}}, 3);
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", "again"}, {"x", "e1"}}, 4);
        ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 7}, {"result", "never scheduled"}, {"x", "e1"}}, 4);
        CHECK(completed_ids(ex->take_new_history()) == std::vector<std::int64_t>{0});
    }
}

TEST_CASE("evicting a suspended coroutine destroys its frames and their locals") {
    static int alive = 0;
    struct Tracker {
        Tracker() { ++alive; }
        ~Tracker() { --alive; }
    };
    Registry r;
    r.add_orchestrator("holds", [](OrchestrationContext& ctx) -> Task<int> {
        Tracker t;
        co_return co_await ctx.wait_for_external_event<int>("never");
    });
    {
        auto ex = make(r, "holds");
        ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "holds"}, {"input", nullptr}}, 1);
        CHECK(alive == 1);
    }
    CHECK(alive == 0);
}
