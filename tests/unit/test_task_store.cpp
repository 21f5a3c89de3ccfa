// Store::complete_and_claim_tasks on both stores: a worker's results and its next claim in one
// write. Each result is delivered only while the worker holds its row (a row taken over by
// another host keeps that host's lease and gets no result from here); the claim takes only
// free rows; what was delivered and claimed is what the callback says.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <set>

#include "store/store.hpp"
#include "support/store_kinds.hpp"

using namespace durable::store;

namespace {

constexpr auto kWait = std::chrono::seconds(30);

using durable::test::await_write;

struct Outcome {
    WriteResult result;
    std::vector<ClaimedTask> claimed;
};

Outcome complete_and_claim(Store& s, const std::string& owner, std::vector<TaskCompletion> done,
                           std::vector<std::string> names, int limit) {
    auto p = std::make_shared<std::promise<Outcome>>();
    auto f = p->get_future();
    s.complete_and_claim_tasks(owner, std::move(done), std::move(names), 10'000, limit,
                               [p](const WriteResult& r, std::vector<ClaimedTask> t) { p->set_value({r, std::move(t)}); });
    REQUIRE(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
}

std::vector<ClaimedTask> claim_tasks(Store& s, const std::string& owner, int limit) {
    auto p = std::make_shared<std::promise<std::vector<ClaimedTask>>>();
    auto f = p->get_future();
    s.claim_tasks({"work"}, owner, 10'000, limit, [p](std::vector<ClaimedTask> t, std::exception_ptr e) {
        REQUIRE_FALSE(e);
        p->set_value(std::move(t));
    });
    REQUIRE(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
}

TaskCompletion result_of(std::int64_t row, std::int64_t task_id) {
    return TaskCompletion{row, NewMessage{"i1", 0, false,
                                          R"({"t":"TaskCompleted","id":)" + std::to_string(task_id) + R"(,"x":"e1"})"}};
}

// Instance i1, run by host "orch", with three activity tasks of "work" (task ids 0, 1, 2).
void instance_with_three_tasks(Store& s) {
    NewInstance n;
    n.id = "i1";
    n.name = "orch";
    n.execution_id = "e1";
    n.now = s.now();
    n.start_event = R"({"t":"ExecutionStarted"})";
    n.start_at = n.now;
    n.lease_owner = "orch";
    n.lease_expires_at = n.now + 60'000;
    REQUIRE(await_write([&](WriteCallback cb) { s.create_instance(n, std::move(cb)); }).ok);
    EpisodeCommit e;
    e.instance_id = "i1";
    e.owner = "orch";
    e.expected_version = 0;
    e.now = n.now;
    e.execution_id = "e1";
    e.status = durable::Status::Running;
    e.lease_expires_at = n.now + 60'000;
    e.events = {R"({"t":"ExecutionStarted"})"};
    for (const auto& row : s.get_inbox("i1", n.now)) e.consumed_inbox.push_back(row.id);
    for (int i = 0; i < 3; ++i) e.tasks.push_back(NewTask{"i1", "e1", "work", i, std::string("1"), 0, std::nullopt});
    REQUIRE(await_write([&](WriteCallback cb) { s.commit_episode(std::move(e), std::move(cb)); }).ok);
}

std::multiset<std::string> inbox_events(Store& s) {
    std::multiset<std::string> out;
    for (const auto& row : s.get_inbox("i1", s.now() + 1)) out.insert(row.event);
    return out;
}

}  // namespace

TEST_CASE_TEMPLATE("complete_and_claim_tasks delivers the results of held rows and claims free rows in one write", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    instance_with_three_tasks(*store);

    // A claim with no results: two of the three rows.
    auto first = complete_and_claim(*store, "w1", {}, {"work"}, 2);
    REQUIRE_FALSE(first.result.error);
    CHECK(first.result.rows.empty());
    REQUIRE(first.claimed.size() == 2);
    // Another worker takes the third.
    auto other = claim_tasks(*store, "w2", 5);
    REQUIRE(other.size() == 1);

    const auto& a = first.claimed[0];
    const auto& b = first.claimed[1];
    const auto& c = other[0];
    // w1 delivers A (its own) and tries C (w2's): only A goes in; nothing is free to claim.
    auto second = complete_and_claim(*store, "w1", {result_of(a.row_id, a.task_id), result_of(c.row_id, c.task_id)},
                                     {"work"}, 5);
    REQUIRE_FALSE(second.result.error);
    CHECK(second.result.rows == std::vector<std::int64_t>{a.row_id});
    CHECK(second.claimed.empty());
    auto events = inbox_events(*store);
    CHECK(events.size() == 1);
    CHECK(events.count(result_of(a.row_id, a.task_id).completion.event) == 1);
    CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 2);  // B (w1's) and C (w2's)

    // Results only (no names, no room): B is delivered, C stays w2's.
    auto third = complete_and_claim(*store, "w1", {result_of(b.row_id, b.task_id)}, {}, 0);
    REQUIRE_FALSE(third.result.error);
    CHECK(third.result.rows == std::vector<std::int64_t>{b.row_id});
    CHECK(inbox_events(*store).size() == 2);
    CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 1);

    // w2 delivers C with a claim that finds nothing left.
    auto fourth = complete_and_claim(*store, "w2", {result_of(c.row_id, c.task_id)}, {"work"}, 5);
    CHECK(fourth.result.rows == std::vector<std::int64_t>{c.row_id});
    CHECK(fourth.claimed.empty());
    CHECK(inbox_events(*store).size() == 3);
    CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 0);
}
