// The episode-commit builder and the lingering-commit merge, without threads or a store.
#include <doctest/doctest.h>

#include "durable/tracing.hpp"
#include "runtime/episode_commit.hpp"

using namespace durable;
using detail::Decision;
using detail::EpisodeOutcome;
using detail::PendingCommit;

namespace {

EpisodeOutcome outcome(const std::vector<Json>& history) {
    EpisodeOutcome o;
    o.instance_id = "i1";
    o.name = "orch";
    o.execution_id = "x1";
    o.correlation_id = "cid";
    o.host_id = "h1";
    o.now = 1000;
    o.lease_ms = 500;
    o.status = Status::Running;
    o.history = &history;
    o.consumed_inbox = {7, 8};
    return o;
}

Decision decision(Decision::Kind kind, std::int64_t id, std::string name, Json input = nullptr) {
    Decision d;
    d.kind = kind;
    d.id = id;
    d.name = std::move(name);
    d.input = std::move(input);
    return d;
}

detail::NewId counter() {
    auto n = std::make_shared<int>(0);
    return [n] { return "child-x" + std::to_string(++*n); };
}

}  // namespace

TEST_CASE("episode commit: history, inbox and the instance row come from the outcome") {
    std::vector<Json> history{Json{{"t", "A"}}, Json{{"t", "B"}}};
    auto o = outcome(history);
    o.custom_status = Json("halfway");
    auto plan = detail::build_episode_commit(o, {}, {}, counter());
    const auto& c = plan.commit;
    CHECK(c.instance_id == "i1");
    CHECK(c.owner == "h1");
    CHECK(c.now == 1000);
    REQUIRE(c.events.size() == 2);
    CHECK(Json::parse(c.events[1]) == history[1]);
    CHECK(c.consumed_inbox == std::vector<std::int64_t>{7, 8});
    CHECK(c.execution_id == "x1");
    CHECK(c.status == Status::Running);
    CHECK(c.progressed);
    CHECK(c.custom_status == "\"halfway\"");
    CHECK_FALSE(c.release_lease);
    CHECK_FALSE(c.input.has_value());

    std::vector<Json> none;
    auto idle = detail::build_episode_commit(outcome(none), {}, {}, counter());
    CHECK_FALSE(idle.commit.progressed);  // no new history: the recovery count is kept
}

TEST_CASE("episode commit: each decision kind becomes its row, and what the host does itself") {
    std::vector<Json> history{Json{{"t", "A"}}};
    std::vector<Decision> ds;
    ds.push_back(decision(Decision::Kind::Activity, 1, "local", 1));
    ds.push_back(decision(Decision::Kind::Activity, 2, "remote", 2));
    auto timer = decision(Decision::Kind::Timer, 3, "");
    timer.fire_at = 5000;
    ds.push_back(timer);
    auto send = decision(Decision::Kind::SendEvent, 4, "ping", "hi");
    send.target = "other";
    ds.push_back(send);
    auto sub = decision(Decision::Kind::SubOrchestration, 5, "child", Json{{"k", 1}});
    sub.target = "i1:5";
    ds.push_back(sub);
    detail::LocalCode local{[](const std::string& n) { return n == "local"; }, {}};
    auto plan = detail::build_episode_commit(outcome(history), ds, local, counter());
    const auto& c = plan.commit;
    REQUIRE(plan.local.activities.size() == 1);
    CHECK(plan.local.activities[0].name == "local");
    REQUIRE(c.tasks.size() == 1);  // the activity this host lacks: a task row in the same commit
    CHECK(c.tasks[0].name == "remote");
    CHECK(c.tasks[0].task_id == 2);
    CHECK(c.tasks[0].instance_id == "i1");
    CHECK(c.tasks[0].execution_id == "x1");
    CHECK(c.tasks[0].input == "2");
    CHECK(c.tasks[0].visible_at == 1000);
    CHECK(plan.local.timers == std::vector<std::int64_t>{5000});
    REQUIRE(c.messages.size() == 2);
    CHECK(c.messages[0].instance_id == "i1");
    CHECK(c.messages[0].visible_at == 5000);
    CHECK(Json::parse(c.messages[0].event)["id"] == 3);
    CHECK(c.messages[1].instance_id == "other");
    CHECK(Json::parse(c.messages[1].event)["name"] == "ping");
    REQUIRE(c.new_instances.size() == 1);
    const auto& child = c.new_instances[0];
    CHECK(child.id == "i1:5");
    CHECK(child.execution_id == "child-x1");
    CHECK(child.parent_id == "i1");
    CHECK(child.parent_task_id == 5);
    CHECK(child.lease_owner == "h1");
    CHECK(child.lease_expires_at == 1500);
    CHECK(Json::parse(child.start_event)["cid"] == "cid");
    CHECK(Json::parse(child.start_event)["px"] == "x1");
    CHECK(plan.local.adopt == std::vector<std::string>{"i1:5"});

    // Without a predicate every activity runs here: the happy path has no task row.
    auto all_local = detail::build_episode_commit(outcome(history), ds, {}, counter());
    CHECK(all_local.local.activities.size() == 2);
    CHECK(all_local.commit.tasks.empty());

    // A child orchestration this host does not register is created unleased, not adopted.
    detail::LocalCode no_child{{}, [](const std::string& n) { return n != "child"; }};
    auto remote_child = detail::build_episode_commit(outcome(history), ds, no_child, counter());
    REQUIRE(remote_child.commit.new_instances.size() == 1);
    CHECK_FALSE(remote_child.commit.new_instances[0].lease_owner.has_value());
    CHECK(remote_child.local.adopt.empty());
}

TEST_CASE("episode commit: children and task rows carry the execution's trace and its sampling decision") {
    std::vector<Json> history{Json{{"t", "A"}}};
    std::vector<Decision> ds;
    ds.push_back(decision(Decision::Kind::Activity, 1, "remote", 1));
    ds.push_back(decision(Decision::Kind::SubOrchestration, 2, "child", 2));
    ds.back().target = "i1:2";
    detail::LocalCode remote{[](const std::string&) { return false; }, {}};
    auto o = outcome(history);
    o.trace_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    auto sampled = detail::build_episode_commit(o, ds, remote, counter());
    REQUIRE(sampled.commit.tasks.size() == 1);
    REQUIRE(sampled.commit.tasks[0].trace_parent);
    auto task_tp = TraceContext::parse(*sampled.commit.tasks[0].trace_parent);
    REQUIRE(task_tp);
    CHECK(task_tp->trace_id == "0af7651916cd43dd8448eb211c80319c");  // the caller's trace
    CHECK(task_tp->span_id != "b7ad6b7169203331");                  // under this execution's span
    CHECK(task_tp->sampled);
    REQUIRE(sampled.commit.new_instances.size() == 1);
    CHECK(sampled.commit.new_instances[0].trace_parent == sampled.commit.tasks[0].trace_parent);
    CHECK(Json::parse(sampled.commit.new_instances[0].start_event)["tp"] == *sampled.commit.tasks[0].trace_parent);

    o.sampled = false;
    auto unsampled = detail::build_episode_commit(o, ds, remote, counter());
    REQUIRE(unsampled.commit.tasks.size() == 1);
    CHECK_FALSE(TraceContext::parse(*unsampled.commit.tasks[0].trace_parent)->sampled);
    CHECK_FALSE(TraceContext::parse(*unsampled.commit.new_instances[0].trace_parent)->sampled);
}

TEST_CASE("episode commit: a finished sub-orchestration releases its lease and tells its parent") {
    std::vector<Json> history{Json{{"t", "Done"}}};
    auto o = outcome(history);
    o.parent_id = "parent";
    o.parent_task_id = 9;
    o.parent_execution_id = "px";
    o.terminal = true;

    SUBCASE("completed") {
        o.status = Status::Completed;
        o.output = Json{{"ok", true}};
        std::vector<Decision> ds{decision(Decision::Kind::Activity, 1, "late")};
        auto plan = detail::build_episode_commit(o, ds, {}, counter());
        CHECK(plan.commit.release_lease);
        CHECK(plan.commit.output == R"({"ok":true})");
        CHECK(plan.local.activities.empty());  // a finished instance dispatches nothing
        REQUIRE(plan.commit.messages.size() == 1);
        auto e = Json::parse(plan.commit.messages[0].event);
        CHECK(plan.commit.messages[0].instance_id == "parent");
        CHECK(e["id"] == 9);
        CHECK(e["x"] == "px");
        CHECK(e["result"] == Json{{"ok", true}});
    }
    SUBCASE("failed") {
        o.status = Status::Failed;
        o.error = Json{{"type", "Boom"}, {"message", "it broke"}};
        auto plan = detail::build_episode_commit(o, {}, {}, counter());
        CHECK(plan.commit.error.has_value());
        CHECK_FALSE(plan.commit.output.has_value());
        auto e = Json::parse(plan.commit.messages.at(0).event);
        CHECK(e["error"]["type"] == "Boom");
        CHECK(e["error"]["message"].get<std::string>().find("it broke") != std::string::npos);
    }
}

TEST_CASE("merging a lingering commit keeps every field of both") {
    PendingCommit a;
    a.commit.instance_id = "i1";
    a.commit.owner = "h1";
    a.commit.expected_version = 4;
    a.commit.now = 10;
    a.commit.first_seq = 3;
    a.commit.events = {"e3"};
    a.commit.consumed_inbox = {1};
    a.commit.messages = {store::NewMessage{"i1", 1, false, "m1"}};
    a.commit.new_instances.resize(1);
    a.commit.new_instances[0].id = "c1";
    a.commit.tasks = {store::NewTask{"i1", "x1", "t1", 1, std::nullopt, 0}};
    a.commit.completed_task_rows = {11};
    a.commit.status = Status::Running;
    a.commit.progressed = true;
    a.commit.execution_id = "x1";
    a.commit.input = "in1";
    a.commit.output = "o1";
    a.commit.error = "err1";
    a.commit.custom_status = "cs1";
    a.commit.lease_expires_at = 100;
    a.commit.audit = {store::AuditEntry{1, "a", "act1", std::nullopt, std::nullopt}};
    a.consumed = {1};
    a.adopt = {"c1"};
    a.since = std::chrono::steady_clock::time_point(std::chrono::seconds(1));

    PendingCommit b;
    b.commit.instance_id = "i1";
    b.commit.owner = "h1";
    b.commit.expected_version = 5;
    b.commit.now = 20;
    b.commit.first_seq = 4;
    b.commit.events = {"e4", "e5"};
    b.commit.consumed_inbox = {2};
    b.commit.messages = {store::NewMessage{"p", 2, false, "m2"}};
    b.commit.new_instances.resize(1);
    b.commit.new_instances[0].id = "c2";
    b.commit.tasks = {store::NewTask{"i1", "x1", "t2", 2, std::nullopt, 0}};
    b.commit.completed_task_rows = {12};
    b.commit.status = Status::Completed;
    b.commit.progressed = false;
    b.commit.execution_id = "x2";
    b.commit.input = std::nullopt;  // unchanged: the earlier one stays
    b.commit.output = "o2";
    b.commit.error = std::nullopt;
    b.commit.custom_status = "cs2";
    b.commit.release_lease = true;
    b.commit.lease_expires_at = 200;
    b.commit.audit = {store::AuditEntry{2, "b", "act2", std::nullopt, std::nullopt}};
    b.consumed = {2};
    b.terminal = true;
    b.status = Status::Completed;
    b.adopt = {"c2"};
    b.since = std::chrono::steady_clock::time_point(std::chrono::seconds(2));

    detail::merge_pending(a, std::move(b));
    const auto& m = a.commit;
    CHECK(m.instance_id == "i1");
    CHECK(m.owner == "h1");
    CHECK(m.expected_version == 4);  // the earlier CAS: one version step for both
    CHECK(m.now == 20);
    CHECK_FALSE(m.reset_history);
    CHECK(m.first_seq == 3);
    CHECK(m.events == std::vector<std::string>{"e3", "e4", "e5"});
    CHECK(m.consumed_inbox == std::vector<std::int64_t>{1, 2});
    REQUIRE(m.messages.size() == 2);
    CHECK(m.messages[1].event == "m2");
    REQUIRE(m.new_instances.size() == 2);
    CHECK(m.new_instances[1].id == "c2");
    REQUIRE(m.tasks.size() == 2);
    CHECK(m.tasks[1].name == "t2");
    CHECK(m.completed_task_rows == std::vector<std::int64_t>{11, 12});
    CHECK(m.status == Status::Completed);
    CHECK(m.progressed);
    CHECK(m.execution_id == "x2");
    CHECK(m.input == "in1");
    CHECK(m.output == "o2");
    CHECK_FALSE(m.error.has_value());
    CHECK(m.custom_status == "cs2");
    CHECK(m.release_lease);
    CHECK(m.lease_expires_at == 200);
    REQUIRE(m.audit.size() == 2);
    CHECK(m.audit[1].action == "act2");
    CHECK(a.consumed == std::vector<std::int64_t>{1, 2});
    CHECK(a.terminal);
    CHECK(a.status == Status::Completed);
    CHECK(a.adopt == std::vector<std::string>{"c1", "c2"});
    CHECK(a.since == std::chrono::steady_clock::time_point(std::chrono::seconds(1)));
}

TEST_CASE("merging a continue-as-new commit into a lingering one restarts history at its events") {
    PendingCommit a;
    a.commit.first_seq = 3;
    a.commit.events = {"old"};
    a.commit.messages = {store::NewMessage{"p", 1, false, "kept"}};
    PendingCommit b;
    b.commit.reset_history = true;
    b.commit.first_seq = 0;
    b.commit.events = {"new0", "new1"};
    b.commit.input = "next";
    detail::merge_pending(a, std::move(b));
    CHECK(a.commit.reset_history);
    CHECK(a.commit.first_seq == 0);
    CHECK(a.commit.events == std::vector<std::string>{"new0", "new1"});
    CHECK(a.commit.messages.size() == 1);
    CHECK(a.commit.input == "next");
}
