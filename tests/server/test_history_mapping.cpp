// The mapping between our history events and the protocol's HistoryEvent, as a table: each
// row is one of our events and the protocol message it must become; every row must also map
// back to the same event. Then the worker's actions and completions.
#include <doctest/doctest.h>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <set>
#include <string>

#include <fmt/format.h>

#include "server/history_mapping.hpp"
#include "server/remote_orchestrator.hpp"
#include "server/work_items.hpp"

using durable::server::Json;
namespace srv = durable::server;

namespace {

struct Row {
    const char* ours;      // our event, JSON
    const char* protocol;  // the HistoryEvent, protobuf text format
};

// ts 1700000000123 ms = 1700000000 s + 123,000,000 ns
const Row kTable[] = {
    {R"({"t":"ExecutionStarted","ts":1700000000123,"name":"greet","input":{"city":"Lima"}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionStarted { name: "greet" input { value: "{\"city\":\"Lima\"}" } })"},
    {R"({"t":"ExecutionStarted","ts":1700000000123,"name":"greet","input":null})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 } executionStarted { name: "greet" })"},
    {R"({"t":"TaskScheduled","ts":1700000000123,"id":3,"name":"charge","input":[1,2]})",
     R"(eventId: 3 timestamp { seconds: 1700000000 nanos: 123000000 }
        taskScheduled { name: "charge" input { value: "[1,2]" } })"},
    {R"({"t":"TaskCompleted","ts":1700000000123,"id":3,"result":"ok"})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        taskCompleted { taskScheduledId: 3 result { value: "\"ok\"" } })"},
    {R"({"t":"TaskFailed","ts":1700000000123,"id":4,"error":{"type":"TypeError","message":"bad","details":"at x"}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        taskFailed { taskScheduledId: 4 failureDetails { errorType: "TypeError" errorMessage: "bad"
                                                        stackTrace { value: "at x" } } })"},
    {R"({"t":"TimerCreated","ts":1700000000123,"id":5,"fire_at":1700000060000})",
     R"(eventId: 5 timestamp { seconds: 1700000000 nanos: 123000000 }
        timerCreated { fireAt { seconds: 1700000060 } })"},
    {R"({"t":"TimerFired","ts":1700000060000,"id":5})",
     R"(eventId: -1 timestamp { seconds: 1700000060 }
        timerFired { timerId: 5 fireAt { seconds: 1700000060 } })"},
    {R"({"t":"SubOrchestrationCreated","ts":1700000000123,"id":6,"name":"child","instance":"p:0006","input":7})",
     R"(eventId: 6 timestamp { seconds: 1700000000 nanos: 123000000 }
        subOrchestrationInstanceCreated { instanceId: "p:0006" name: "child" input { value: "7" } })"},
    {R"({"t":"SubOrchestrationCompleted","ts":1700000000123,"id":6,"result":{"n":1}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        subOrchestrationInstanceCompleted { taskScheduledId: 6 result { value: "{\"n\":1}" } })"},
    {R"({"t":"SubOrchestrationFailed","ts":1700000000123,"id":6,"error":{"type":"Error","message":"child died"}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        subOrchestrationInstanceFailed { taskScheduledId: 6 failureDetails { errorType: "Error"
                                                                            errorMessage: "child died" } })"},
    {R"({"t":"EventRaised","ts":1700000000123,"name":"approved","input":{"by":"ada"}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        eventRaised { name: "approved" input { value: "{\"by\":\"ada\"}" } })"},
    {R"({"t":"EventSent","ts":1700000000123,"id":8,"name":"ping","instance":"other","input":true})",
     R"(eventId: 8 timestamp { seconds: 1700000000 nanos: 123000000 }
        eventSent { instanceId: "other" name: "ping" input { value: "true" } })"},
    {R"({"t":"ExecutionCompleted","ts":1700000000123,"status":"Completed","result":42})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionCompleted { orchestrationStatus: ORCHESTRATION_STATUS_COMPLETED result { value: "42" } })"},
    {R"({"t":"ExecutionCompleted","ts":1700000000123,"status":"Failed","error":{"type":"Boom","message":"m"}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionCompleted { orchestrationStatus: ORCHESTRATION_STATUS_FAILED
                             failureDetails { errorType: "Boom" errorMessage: "m" } })"},
    {R"({"t":"ContinuedAsNew","ts":1700000000123,"input":{"cycle":2}})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        continueAsNew { input { value: "{\"cycle\":2}" } })"},
    {R"({"t":"ExecutionTerminated","ts":1700000000123,"reason":"enough"})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionTerminated { input { value: "\"enough\"" } })"},
    {R"({"t":"ExecutionSuspended","ts":1700000000123,"reason":"pause"})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionSuspended { input { value: "\"pause\"" } })"},
    {R"({"t":"ExecutionResumed","ts":1700000000123,"reason":""})",
     R"(eventId: -1 timestamp { seconds: 1700000000 nanos: 123000000 }
        executionResumed { input { value: "\"\"" } })"},
};

::HistoryEvent parse_text(const char* text) {
    ::HistoryEvent h;
    REQUIRE_MESSAGE(google::protobuf::TextFormat::ParseFromString(text, &h), text);
    return h;
}

}  // namespace

TEST_CASE("every history event type maps to its protocol form and back (the table)") {
    std::set<std::string> types;
    for (const auto& row : kTable) {
        CAPTURE(row.ours);
        Json ours = Json::parse(row.ours);
        types.insert(ours["t"].get<std::string>());
        ::HistoryEvent expected = parse_text(row.protocol);
        ::HistoryEvent got = srv::to_protocol(ours);
        std::string diff;
        google::protobuf::util::MessageDifferencer d;
        d.ReportDifferencesToString(&diff);
        CHECK_MESSAGE(d.Compare(expected, got), diff);
        Json back = srv::from_protocol(got);
        CHECK(back == ours);
    }
    // All 16 event types we write are in the table.
    CHECK(types.size() == 16);
}

TEST_CASE("events with no counterpart are refused with a clear message") {
    CHECK_THROWS_WITH_AS(srv::to_protocol(Json::parse(R"({"t":"Mystery","ts":1})")),
                         "history event type 'Mystery' has no protocol form", srv::MappingError);
    ::HistoryEvent h = parse_text("eventId: -1 orchestratorStarted {}");
    CHECK_THROWS_AS(srv::from_protocol(h), srv::MappingError);
    ::HistoryEvent bad = parse_text(R"(eventRaised { name: "x" input { value: "{oops" } })");
    CHECK_THROWS_WITH_AS(srv::from_protocol(bad), doctest::Contains("eventRaised.input is not JSON"),
                         srv::MappingError);
}

TEST_CASE("a worker's actions become our scheduling events with the action's id") {
    struct ActionRow {
        const char* action;
        const char* event;
    };
    const ActionRow rows[] = {
        {R"(id: 1 scheduleTask { name: "hello" input { value: "\"Tokyo\"" } })",
         R"({"t":"TaskScheduled","ts":1000,"id":1,"name":"hello","input":"Tokyo"})"},
        {R"(id: 2 createTimer { fireAt { seconds: 5 } })", R"({"t":"TimerCreated","ts":1000,"id":2,"fire_at":5000})"},
        {R"(id: 3 createSubOrchestration { instanceId: "p:0003" name: "child" })",
         R"({"t":"SubOrchestrationCreated","ts":1000,"id":3,"name":"child","instance":"p:0003","input":null})"},
        {R"(id: 4 sendEvent { instance { instanceId: "q" } name: "go" data { value: "1" } })",
         R"({"t":"EventSent","ts":1000,"id":4,"name":"go","instance":"q","input":1})"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.action);
        ::OrchestratorAction a;
        REQUIRE(google::protobuf::TextFormat::ParseFromString(row.action, &a));
        CHECK(srv::scheduling_event(a, 1000) == Json::parse(row.event));
    }
    ::OrchestratorAction no_id, terminate, malformed;
    REQUIRE(google::protobuf::TextFormat::ParseFromString(R"(id: 0 scheduleTask { name: "x" })", &no_id));
    CHECK_THROWS_AS(srv::scheduling_event(no_id, 1), srv::MappingError);
    REQUIRE(google::protobuf::TextFormat::ParseFromString(R"(id: 1 terminateOrchestration { instanceId: "x" })",
                                                          &terminate));
    CHECK_THROWS_WITH_AS(srv::scheduling_event(terminate, 1), doctest::Contains("not served"), srv::MappingError);
    REQUIRE(google::protobuf::TextFormat::ParseFromString(R"(id: 1 scheduleTask { name: "x" input { value: "{" } })",
                                                          &malformed));
    CHECK_THROWS_WITH_AS(srv::scheduling_event(malformed, 1), doctest::Contains("scheduleTask.input is not JSON"),
                         srv::MappingError);
}

TEST_CASE("a worker's completion: completed, failed (with and without details), terminated, continued as new") {
    auto parse = [](const char* text) {
        ::CompleteOrchestrationAction a;
        REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &a));
        return srv::completion_of(a);
    };
    auto done = parse(R"(orchestrationStatus: ORCHESTRATION_STATUS_COMPLETED result { value: "[\"a\"]" })");
    CHECK(done.kind == srv::Completion::Kind::Completed);
    CHECK(done.result == Json::parse(R"(["a"])"));

    auto nothing = parse("orchestrationStatus: ORCHESTRATION_STATUS_COMPLETED");
    CHECK(nothing.result.is_null());

    auto failed = parse(R"(orchestrationStatus: ORCHESTRATION_STATUS_FAILED
                           failureDetails { errorType: "TaskFailedError" errorMessage: "activity x failed" })");
    CHECK(failed.kind == srv::Completion::Kind::Failed);
    CHECK(failed.error == Json::parse(R"({"type":"TaskFailedError","message":"activity x failed"})"));

    auto bare = parse(R"(orchestrationStatus: ORCHESTRATION_STATUS_FAILED result { value: "generator broke" })");
    CHECK(bare.error["message"] == "generator broke");

    auto terminated = parse(R"(orchestrationStatus: ORCHESTRATION_STATUS_TERMINATED result { value: "\"stop\"" })");
    CHECK(terminated.kind == srv::Completion::Kind::Terminated);
    CHECK(terminated.terminate_reason == "stop");

    auto again = parse(R"(orchestrationStatus: ORCHESTRATION_STATUS_CONTINUED_AS_NEW result { value: "{\"n\":2}" }
                          carryoverEvents { eventRaised { name: "later" input { value: "5" } } })");
    CHECK(again.kind == srv::Completion::Kind::ContinuedAsNew);
    CHECK(again.result == Json::parse(R"({"n":2})"));
    REQUIRE(again.carryover.size() == 1);
    CHECK(again.carryover[0]["t"] == "EventRaised");
    CHECK(again.carryover[0]["input"] == 5);

    ::CompleteOrchestrationAction pending;
    pending.set_orchestrationstatus(ORCHESTRATION_STATUS_PENDING);
    CHECK_THROWS_AS(srv::completion_of(pending), srv::MappingError);
}

TEST_CASE("an orchestrator step sent through the hub carries the same past as a fresh mapping, step after step") {
    auto hub = std::make_shared<srv::WorkItemHub>(8);
    auto remote = srv::remote_orchestrator(hub);
    auto stream = hub->open_stream();
    auto ev = [](const char* text) { return Json::parse(text); };
    durable::RemoteStep step;
    step.instance_id = "i";
    step.name = "n";
    step.execution_id = "x1";
    step.now_ms = 1700000000300;
    step.fresh = {ev(R"({"t":"ExecutionStarted","ts":1700000000100,"name":"n","input":1})")};
    // Sends `step`, answers it (continuing), and returns the request the worker got.
    auto send = [&](const durable::RemoteStep& st) {
        REQUIRE(remote->dispatch(st, [](durable::RemoteReply) {}));
        auto item = hub->next(stream, std::chrono::steady_clock::now() + std::chrono::seconds(5));
        REQUIRE(item);
        srv::WorkResult r;
        r.kind = srv::WorkResult::Kind::Orchestrator;
        r.orchestrator.set_instanceid(st.instance_id);
        REQUIRE(hub->complete(srv::orchestrator_key(st.instance_id), std::move(r)));
        return item->orchestratorrequest();
    };
    auto same_past = [](const ::OrchestratorRequest& a, const ::OrchestratorRequest& b) {
        REQUIRE(a.pastevents_size() == b.pastevents_size());
        for (int i = 0; i < a.pastevents_size(); ++i) {
            CHECK(google::protobuf::util::MessageDifferencer::Equals(a.pastevents(i), b.pastevents(i)));
        }
    };
    auto first = send(step);
    same_past(first, srv::orchestrator_request(step));
    CHECK(first.pastevents_size() == 0);

    // The next steps: the past grows by what was fresh (and the decisions); mapped incrementally.
    for (int k = 0; k < 3; ++k) {
        for (auto& e : step.fresh) step.past.push_back(e);
        step.past.push_back(ev(fmt::format(R"({{"t":"TaskScheduled","ts":{},"id":{},"name":"a","input":{}}})",
                                           1700000000100 + 100 * k, k + 1, k).c_str()));
        step.fresh = {ev(fmt::format(R"({{"t":"TaskCompleted","ts":{},"id":{},"result":{}}})", 1700000000150 + 100 * k,
                                     k + 1, k)
                             .c_str())};
        step.now_ms += 100;
        auto req = send(step);
        same_past(req, srv::orchestrator_request(step));
        CHECK(req.pastevents_size() > first.pastevents_size());
    }

    // A past that is not the one mapped before (the instance came back from another host with
    // a different history, a rewind): mapped anew, not from the kept form.
    step.past[1] = ev(R"({"t":"TaskScheduled","ts":1700000000100,"id":1,"name":"other","input":0})");
    same_past(send(step), srv::orchestrator_request(step));
    // A new execution (continue-as-new): its own past.
    step.execution_id = "x2";
    step.past.resize(2);
    same_past(send(step), srv::orchestrator_request(step));
}
