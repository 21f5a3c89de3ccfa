// WorkItemHub without gRPC: backpressure per stream, the least loaded stream first, a closed
// stream's items given back at once, fenced answers, one item per key, stopping.
#include <doctest/doctest.h>

#include <vector>

#include "server/work_items.hpp"

using namespace durable::server;
using namespace std::chrono_literals;

namespace {

::WorkItem activity(const std::string& instance, int task) {
    ::WorkItem w;
    w.mutable_activityrequest()->set_name("a");
    w.mutable_activityrequest()->mutable_orchestrationinstance()->set_instanceid(instance);
    w.mutable_activityrequest()->set_taskid(task);
    return w;
}

WorkResult answer(const std::string& result) {
    WorkResult r;
    r.kind = WorkResult::Kind::Activity;
    r.activity.mutable_result()->set_value(result);
    return r;
}

std::optional<::WorkItem> take(WorkItemHub& hub, const std::shared_ptr<WorkItemHub::Stream>& s) {
    return hub.next(s, std::chrono::steady_clock::now() + 20ms);
}

}  // namespace

TEST_CASE("a stream gets at most max_outstanding unanswered items, an answer lets the next one through") {
    WorkItemHub hub(2);
    auto s = hub.open_stream();
    std::vector<std::string> results;
    for (int i = 1; i <= 3; ++i) {
        REQUIRE(hub.submit(activity_key("i", i), activity("i", i), [&](WorkResult r) {
            results.push_back(r.activity.result().value());
        }));
    }
    auto first = take(hub, s);
    auto second = take(hub, s);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->activityrequest().taskid() == 1);
    CHECK(second->activityrequest().taskid() == 2);
    CHECK(!take(hub, s));  // the third waits: two are unanswered
    CHECK(hub.stats().queued == 1);
    REQUIRE(hub.complete(activity_key("i", 1), answer("one")));
    auto third = take(hub, s);
    REQUIRE(third);
    CHECK(third->activityrequest().taskid() == 3);
    CHECK(results == std::vector<std::string>{"one"});
}

TEST_CASE("items go to the least loaded stream") {
    WorkItemHub hub(10);
    auto a = hub.open_stream();
    REQUIRE(hub.submit("k1", activity("i", 1), nullptr));
    auto b = hub.open_stream();
    REQUIRE(hub.submit("k2", activity("i", 2), nullptr));
    auto on_a = take(hub, a);
    auto on_b = take(hub, b);
    REQUIRE(on_a);
    REQUIRE(on_b);
    CHECK(on_a->activityrequest().taskid() == 1);
    CHECK(on_b->activityrequest().taskid() == 2);
}

TEST_CASE("a closed stream gives its unanswered items back at once, first in line, to another stream") {
    WorkItemHub hub(1);
    auto a = hub.open_stream();
    REQUIRE(hub.submit("k1", activity("i", 1), nullptr));
    REQUIRE(take(hub, a));
    REQUIRE(hub.submit("k2", activity("i", 2), nullptr));  // queued: a is full
    auto b = hub.open_stream();
    auto on_b = take(hub, b);
    REQUIRE(on_b);
    CHECK(on_b->activityrequest().taskid() == 2);
    REQUIRE(hub.complete("k2", answer("2")));
    hub.close_stream(a);
    CHECK(hub.ended(a));
    auto again = take(hub, b);
    REQUIRE(again);
    CHECK(again->activityrequest().taskid() == 1);
    // Either worker's answer completes it, once.
    CHECK(hub.complete("k1", answer("late from a")));
    CHECK(!hub.complete("k1", answer("from b")));
}

TEST_CASE("answers for items not out are fenced: unknown, answered, withdrawn") {
    WorkItemHub hub(4);
    auto s = hub.open_stream();
    bool called = false;
    REQUIRE(hub.submit("k", activity("i", 1), [&](WorkResult) { called = true; }));
    CHECK(!hub.submit("k", activity("i", 1), nullptr));  // one item per key
    REQUIRE(take(hub, s));
    hub.withdraw("k");
    CHECK(!hub.complete("k", answer("stale")));
    CHECK(!called);
    CHECK(!hub.complete("never-sent", answer("x")));
    CHECK(hub.stats().outstanding == 0);
}

TEST_CASE("stopping: streams end, queued and outstanding items are refused, new ones too") {
    WorkItemHub hub(1);
    auto s = hub.open_stream();
    std::vector<WorkResult::Kind> kinds;
    REQUIRE(hub.submit("k1", activity("i", 1), [&](WorkResult r) { kinds.push_back(r.kind); }));
    REQUIRE(hub.submit("k2", activity("i", 2), [&](WorkResult r) { kinds.push_back(r.kind); }));
    REQUIRE(take(hub, s));
    hub.end_streams();
    CHECK(!take(hub, s));
    CHECK(hub.ended(s));
    CHECK(hub.open_stream() == nullptr);
    // Answers are still taken between the two steps (completions in flight during the grace).
    CHECK(hub.complete("k1", answer("in time")));
    hub.stop();
    CHECK(kinds == std::vector<WorkResult::Kind>{WorkResult::Kind::Activity, WorkResult::Kind::Refused});
    CHECK(!hub.submit("k3", activity("i", 3), nullptr));
    CHECK(!hub.complete("k2", answer("too late")));
}

TEST_CASE("a stream without a thread is woken when items are assigned or it ends, and takes what is ready") {
    WorkItemHub hub(2);
    int wakes = 0;
    auto s = hub.open_stream("peer", [&] { ++wakes; });
    CHECK(wakes == 0);
    CHECK(hub.take(s, 8).empty());
    REQUIRE(hub.submit("a:i:1", activity("i", 1), nullptr));
    REQUIRE(hub.submit("a:i:2", activity("i", 2), nullptr));
    REQUIRE(hub.submit("a:i:3", activity("i", 3), nullptr));  // over the limit: queued
    CHECK(wakes == 2);
    auto first = hub.take(s, 1);
    REQUIRE(first.size() == 1);
    CHECK(first[0]->activityrequest().taskid() == 1);
    auto second = hub.take(s, 8);
    REQUIRE(second.size() == 1);
    CHECK(second[0]->activityrequest().taskid() == 2);
    CHECK(hub.take(s, 8).empty());  // the third waits for an answer
    REQUIRE(hub.complete("a:i:1", answer("1")));
    CHECK(wakes == 3);
    auto third = hub.take(s, 8);
    REQUIRE(third.size() == 1);
    CHECK(third[0]->activityrequest().taskid() == 3);
    hub.end_streams();
    CHECK(wakes == 4);
    CHECK(hub.ended(s));
    CHECK(hub.take(s, 8).empty());
}
