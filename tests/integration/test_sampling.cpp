// Head sampling across hosts (each case on both stores): the decision is made once, when an
// instance is scheduled, and every host honours it for the instance, its sub-orchestrations,
// its later generations and its activities run from task rows on other hosts; a sampled trace
// reaches those activities with the caller's trace id and the right parents.
#include <doctest/doctest.h>

#include <mutex>
#include <set>

#include "runtime/database_access.hpp"
#include "store/store.hpp"
#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

// The spans a host hands its sink.
struct SpanLog {
    std::mutex mu;
    std::vector<Span> spans;  // guarded by mu

    SpanSink sink() {
        return [this](const Span& s) {
            std::lock_guard lock(mu);
            spans.push_back(s);
        };
    }
    std::vector<Span> all() {
        std::lock_guard lock(mu);
        return spans;
    }
    std::size_t size() {
        std::lock_guard lock(mu);
        return spans.size();
    }
};

Task<int> child(OrchestrationContext& ctx, int n) { co_return co_await ctx.call_activity<int>("inc", n); }

// A sub-orchestration and an activity, both of whose activities run on the worker host.
Task<int> parent(OrchestrationContext& ctx, int n) {
    int a = co_await ctx.call_sub_orchestration<int>("child", n);
    co_return co_await ctx.call_activity<int>("inc", a);
}

// Continues as new `n` times, then calls one activity.
Task<int> again(OrchestrationContext& ctx, int n) {
    if (n > 0) {
        ctx.continue_as_new(n - 1);
        co_return 0;
    }
    co_return co_await ctx.call_activity<int>("inc", 0);
}

HostOptions options(std::string id, SpanLog& log, Sampler sampler = Sampler{}) {
    HostOptions o;
    o.host_id = std::move(id);
    o.lease_duration = 1000ms;
    o.poll_interval = 10ms;
    o.span_sink = log.sink();
    o.trace_sampler = sampler;
    return o;
}

std::string orchestration_span(const std::vector<Span>& spans, const std::string& instance_id) {
    for (const auto& s : spans) {
        if (s.instance_id == instance_id && s.name.rfind("orchestration:", 0) == 0) return s.span_id;
    }
    return {};
}

}  // namespace

TEST_CASE_TEMPLATE("a caller's sampled flag decides for every host: activities run from task rows on another host join "
                   "the caller's trace, and an unsampled trace makes no span anywhere",
                   S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto orch_reg = std::make_shared<Registry>();
    orch_reg->add_orchestrator("parent", parent).add_orchestrator("child", child);
    auto act_reg = std::make_shared<Registry>();
    act_reg->add_activity("inc", [](int n) { return n + 1; });
    SpanLog orch_log, worker_log;
    // The worker's own sampler would record everything: the caller's decision wins anyway.
    Host orch(db, orch_reg, options("orch", orch_log));
    Host worker(db, act_reg, options("worker", worker_log, Sampler::always_on()));
    orch.start();
    worker.start();
    auto c = orch.client();

    const std::string trace = "0af7651916cd43dd8448eb211c80319c", caller = "b7ad6b7169203331";
    ScheduleOptions so;
    so.traceparent = "00-" + trace + "-" + caller + "-01";
    auto id = c.schedule("parent", 1, so);
    REQUIRE(c.wait_for_completion(id, 30s).output == 3);
    CHECK(worker.stats().activities == 2);
    CHECK(orch.stats().activities == 0);
    auto orch_spans = orch_log.all();
    auto worker_spans = worker_log.all();
    std::vector<Span> spans = orch_spans;
    spans.insert(spans.end(), worker_spans.begin(), worker_spans.end());
    for (const auto& s : spans) CHECK_MESSAGE(s.trace_id == trace, s.name);
    auto parent_span = orchestration_span(orch_spans, id);
    REQUIRE(!parent_span.empty());
    std::string child_id;
    for (const auto& s : orch_spans) {
        if (s.name == "orchestration:child") child_id = s.instance_id;
        if (s.name == "orchestration:parent") CHECK(s.parent_span_id == caller);
    }
    REQUIRE(!child_id.empty());
    auto child_span = orchestration_span(orch_spans, child_id);
    for (const auto& s : orch_spans) {
        if (s.name == "orchestration:child") CHECK(s.parent_span_id == parent_span);
    }
    // Both activities ran on the worker, from task rows, each under its own instance's
    // orchestration span.
    int activities = 0;
    for (const auto& s : worker_spans) {
        if (s.name != "activity:inc") continue;
        ++activities;
        CHECK(s.host_id == "worker");
        CHECK(s.parent_span_id == (s.instance_id == id ? parent_span : child_span));
    }
    CHECK(activities == 2);

    // The same work under a caller that did not sample its trace: no host makes a span.
    auto before = orch_log.size() + worker_log.size();
    const std::string quiet = "1af7651916cd43dd8448eb211c80319d";
    so.traceparent = "00-" + quiet + "-" + caller + "-00";
    auto unsampled = c.schedule("parent", 10, so);
    REQUIRE(c.wait_for_completion(unsampled, 30s).output == 12);
    CHECK(worker.stats().activities == 4);
    CHECK(orch_log.size() + worker_log.size() == before);
    // The decision is persisted with the instance.
    CHECK(detail::store_of(db)->get_instance(unsampled)->trace_parent == "00-" + quiet + "-" + caller + "-00");
    orch.stop();
    worker.stop();
}

TEST_CASE_TEMPLATE("the scheduling process's sampler decides once: a host with another sampler honours it, across "
                   "continue-as-new",
                   S, DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto runner_reg = std::make_shared<Registry>();
    runner_reg->add_orchestrator("again", again).add_activity("inc", [](int n) { return n + 1; });
    auto empty_reg = std::make_shared<Registry>();
    SpanLog runner_log, off_log;
    Host runner(db, runner_reg, options("runner", runner_log, Sampler::always_on()));
    // A host that runs nothing and samples nothing: its clients schedule for the runner.
    Host off(db, empty_reg, options("off", off_log, Sampler::always_off()));
    runner.start();
    off.start();

    auto quiet = off.client().schedule("again", 2);
    REQUIRE(off.client().wait_for_completion(quiet, 30s).output == 1);
    CHECK(runner.stats().completed == 1);
    CHECK(runner_log.size() == 0);
    CHECK(off_log.size() == 0);

    auto loud = runner.client().schedule("again", 2);
    REQUIRE(runner.client().wait_for_completion(loud, 30s).output == 1);
    auto spans = runner_log.all();
    CHECK_FALSE(spans.empty());
    std::set<std::string> names;
    for (const auto& s : spans) {
        CHECK(s.instance_id == loud);
        names.insert(s.name);
    }
    CHECK(names.count("orchestration:again"));
    CHECK(names.count("activity:inc"));
    runner.stop();
    off.stop();
}

TEST_CASE_TEMPLATE("traceidratio sampling keeps whole instances: each has all its spans or none", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto db = Database::open(env.target());
    auto reg = std::make_shared<Registry>();
    reg->add_orchestrator("again", again).add_activity("inc", [](int n) { return n + 1; });
    SpanLog log;
    Host host(db, reg, options("h", log, Sampler::trace_id_ratio(0.5)));
    host.start();
    auto c = host.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 40; ++i) ids.push_back(c.schedule("again", 0));
    for (const auto& id : ids) REQUIRE(c.wait_for_completion(id, 30s).status == Status::Completed);
    auto spans = log.all();
    int sampled = 0;
    for (const auto& id : ids) {
        std::set<std::string> names;
        for (const auto& s : spans) {
            if (s.instance_id == id) names.insert(s.name);
        }
        if (names.empty()) continue;
        ++sampled;
        CHECK(names.count("orchestration:again"));
        CHECK(names.count("episode:again"));
        CHECK(names.count("activity:inc"));
    }
    // Half of 40 in expectation; all or none has a chance of 2^-39.
    CHECK(sampled > 0);
    CHECK(sampled < 40);
    host.stop();
}
