// Patches and rewinds in replay, on canned histories (tests/data/) with no store or host:
// ctx.patched() follows the marker history holds (old histories keep the old path, new
// executions take the new one and record the marker), a marker the code no longer asks about
// is non-determinism unless the patch is deprecated, non-determinism messages point to
// versions and patches, and a rewind marker leaves the failure out of replay.
#include <doctest/doctest.h>

#include <fstream>
#include <spdlog/spdlog.h>

#include "runtime/execution.hpp"
#include "runtime/rewind.hpp"

using namespace durable;
using durable::detail::Execution;

namespace {

std::vector<Json> load_history(const std::string& name) {
    std::ifstream in(std::string(DURABLE_SOURCE_DIR) + "/tests/data/" + name);
    REQUIRE(in.good());
    return Json::parse(in).get<std::vector<Json>>();
}

// Today's code: the tax is rounded, behind a patch.
Task<std::string> invoice(OrchestrationContext& ctx, int amount) {
    auto subtotal = co_await ctx.call_activity<int>("price", amount);
    std::string tax;
    if (ctx.patched("fix-tax-rounding")) {
        tax = co_await ctx.call_activity<std::string>("round_tax", subtotal);
    } else {
        tax = co_await ctx.call_activity<std::string>("truncate_tax", subtotal);
    }
    co_return tax;
}

// Later: no instance without the patch is left; the old branch is gone.
Task<std::string> invoice_deprecated(OrchestrationContext& ctx, int amount) {
    auto subtotal = co_await ctx.call_activity<int>("price", amount);
    ctx.deprecate_patch("fix-tax-rounding");
    co_return co_await ctx.call_activity<std::string>("round_tax", subtotal);
}

// The same, with the patch call simply deleted.
Task<std::string> invoice_patch_deleted(OrchestrationContext& ctx, int amount) {
    auto subtotal = co_await ctx.call_activity<int>("price", amount);
    co_return co_await ctx.call_activity<std::string>("round_tax", subtotal);
}

// The code changed in place, no patch: the old history no longer matches.
Task<std::string> invoice_changed(OrchestrationContext& ctx, int amount) {
    auto subtotal = co_await ctx.call_activity<int>("price", amount);
    co_return co_await ctx.call_activity<std::string>("round_tax", subtotal);
}

Task<int> three_steps(OrchestrationContext& ctx, int x) {
    for (int i = 0; i < 3; ++i) x = co_await ctx.call_activity<int>("step", x);
    co_return x;
}

std::unique_ptr<Execution> make(const Registry& r, const std::string& name) {
    detail::ExecutionInfo info{"inst-1", name, "e1", std::nullopt, -1, {}};
    return std::make_unique<Execution>(r, info, detail::ExecutionLimits{}, spdlog::default_logger());
}

int count_type(const std::vector<Json>& events, const char* type) {
    int n = 0;
    for (const auto& e : events) n += e.value("t", "") == type ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE("patched() is false when replaying a history recorded before the patch") {
    Registry r;
    r.add_orchestrator("invoice", invoice);
    auto ex = make(r, "invoice");
    ex->replay(load_history("patch_old_history.json"));
    REQUIRE(ex->state() == Execution::State::Running);
    CHECK(ex->take_new_history().empty());  // no marker: the old path matched history
    auto redo = ex->take_redispatch();
    REQUIRE(redo.size() == 1);
    CHECK(redo[0].name == "truncate_tax");
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 1}, {"result", "1.00"}, {"x", "e1"}}, 5);
    CHECK(ex->state() == Execution::State::Completed);
    CHECK(count_type(ex->take_new_history(), "PatchApplied") == 0);
}

TEST_CASE("patched() is true when replaying a history that holds the marker") {
    Registry r;
    r.add_orchestrator("invoice", invoice);
    auto ex = make(r, "invoice");
    ex->replay(load_history("patch_new_history.json"));
    REQUIRE(ex->state() == Execution::State::Running);
    CHECK(ex->take_new_history().empty());  // the marker is in history already: not recorded twice
    auto redo = ex->take_redispatch();
    REQUIRE(redo.size() == 1);
    CHECK(redo[0].name == "round_tax");
}

TEST_CASE("a new execution takes the patched path and records the marker before its decision") {
    Registry r;
    r.add_orchestrator("invoice", invoice);
    auto ex = make(r, "invoice");
    ex->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "invoice"}, {"input", 10}}, 1);
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", 11}, {"x", "e1"}}, 2);
    auto events = ex->take_new_history();
    // Start, price scheduled, price completed, the marker, round_tax scheduled: what
    // patch_new_history.json holds (times aside).
    auto canned = load_history("patch_new_history.json");
    REQUIRE(events.size() == canned.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        CHECK(events[i]["t"] == canned[i]["t"]);
        CHECK(events[i].value("name", "") == canned[i].value("name", ""));
        CHECK(events[i].value("patch", "") == canned[i].value("patch", ""));
    }
}

TEST_CASE("a deprecated patch replays histories with and without its marker") {
    Registry r;
    r.add_orchestrator("invoice", invoice_deprecated);
    auto with_marker = make(r, "invoice");
    with_marker->replay(load_history("patch_new_history.json"));
    CHECK(with_marker->state() == Execution::State::Running);
    auto fresh = make(r, "invoice");
    fresh->apply_new(Json{{"t", "ExecutionStarted"}, {"name", "invoice"}, {"input", 10}}, 1);
    fresh->apply_new(Json{{"t", "TaskCompleted"}, {"id", 0}, {"result", 11}, {"x", "e1"}}, 2);
    CHECK(count_type(fresh->take_new_history(), "PatchApplied") == 0);  // no new markers
}

TEST_CASE("a marker the code no longer asks about is non-determinism that names deprecate_patch") {
    Registry r;
    r.add_orchestrator("invoice", invoice_patch_deleted);
    auto ex = make(r, "invoice");
    ex->replay(load_history("patch_new_history.json"));
    REQUIRE(ex->state() == Execution::State::Failed);
    CHECK(ex->error()["type"] == "NonDeterminism");
    std::string msg = ex->error()["message"];
    CHECK(msg.find("PatchApplied 'fix-tax-rounding'") != std::string::npos);
    CHECK(msg.find("ctx.deprecate_patch(\"fix-tax-rounding\")") != std::string::npos);
}

TEST_CASE("a non-determinism error suggests versions or patches") {
    Registry r;
    r.add_orchestrator("invoice", invoice_changed);
    auto ex = make(r, "invoice");
    ex->replay(load_history("patch_old_history.json"));
    REQUIRE(ex->state() == Execution::State::Failed);
    CHECK(ex->error()["type"] == "NonDeterminism");
    std::string msg = ex->error()["message"];
    CHECK(msg.find("task 1 is TaskScheduled 'truncate_tax' in history") != std::string::npos);
    CHECK(msg.find("new version") != std::string::npos);
    CHECK(msg.find(".version = ") != std::string::npos);
    CHECK(msg.find("ctx.patched(") != std::string::npos);
}

TEST_CASE("a rewind marker leaves the failure out of replay and the failed task is dispatched again") {
    auto history = load_history("rewind_history.json");
    auto skip = detail::rewound_events(history);
    // The failed step's result and the failed completion; steps one and two stay.
    CHECK(skip == std::vector<bool>{false, false, false, false, false, false, true, true, false});
    Registry r;
    r.add_orchestrator("three_steps", three_steps);
    auto ex = make(r, "three_steps");
    ex->replay(history);
    REQUIRE(ex->state() == Execution::State::Running);
    auto redo = ex->take_redispatch();
    REQUIRE(redo.size() == 1);  // only step three runs again
    CHECK(redo[0].id == 2);
    CHECK(redo[0].input == 3);
    ex->apply_new(Json{{"t", "TaskCompleted"}, {"id", 2}, {"result", 4}, {"x", "e1"}}, 10);
    CHECK(ex->state() == Execution::State::Completed);
    CHECK(ex->output() == 4);
}

TEST_CASE("a rewind of code that failed on its own replays up to the failure and runs on") {
    // No task named in the failure: only the failed completion is left out; the code, fixed
    // since, goes on past the recorded events and its new decision is recorded.
    std::vector<Json> history = {
        Json{{"t", "ExecutionStarted"}, {"ts", 1}, {"name", "three_steps"}, {"input", 1}},
        Json{{"t", "TaskScheduled"}, {"ts", 1}, {"id", 0}, {"name", "step"}, {"input", 1}},
        Json{{"t", "TaskCompleted"}, {"ts", 2}, {"id", 0}, {"result", 2}, {"x", "e1"}},
        Json{{"t", "ExecutionCompleted"}, {"ts", 2}, {"status", "Failed"},
             {"error", {{"type", "std::logic_error"}, {"message", "bug"}}}},
        Json{{"t", "ExecutionRewound"}, {"ts", 5}, {"reason", "bug fixed"}}};
    CHECK(detail::rewind_start(history, 0, 4) == 3);
    Registry r;
    r.add_orchestrator("three_steps", three_steps);
    auto ex = make(r, "three_steps");
    ex->replay(history, 1);  // the marker is new: it joins the episode's history first
    REQUIRE(ex->state() == Execution::State::Running);
    auto events = ex->take_new_history();
    REQUIRE(events.size() == 2);
    CHECK(events[0]["t"] == "ExecutionRewound");
    CHECK(events[1]["t"] == "TaskScheduled");
    CHECK(events[1]["id"] == 1);
    auto decisions = ex->take_decisions();
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0].input == 2);
}
