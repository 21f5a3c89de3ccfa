// Remote orchestrations: an orchestration the serving process has no C++ code for runs step by
// step in a protocol worker (server/protocol_worker.hpp, deciding from the history it is sent,
// as an SDK does), committed like a C++ episode, side by side with C++ orchestrations and
// activities in one file: activities (remote and C++), C++ and remote sub-orchestrations,
// timers, external events with a timeout, custom status, continue-as-new, failures,
// terminate / suspend / resume, purge; and the fencing of answers that come too late.
#include <doctest/doctest.h>

#include <grpcpp/grpcpp.h>
#include <thread>

#include "orchestrator_service.grpc.pb.h"
#include "server/activity_sequence.hpp"
#include "server/protocol_worker.hpp"
#include "server/remote_activity.hpp"
#include "server/remote_orchestrator.hpp"
#include "server/sidecar_server.hpp"
#include "server/work_items.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;
using server::Decision;
using server::ProtocolWorker;
using server::ReplayView;

namespace {

Task<Json> cpp_parent(OrchestrationContext& ctx, Json input) {
    auto child = co_await ctx.call_sub_orchestration<Json>("remote_seq", input);
    co_return Json{{"child", child}};
}

// A host whose unknown orchestrations and activities go to connected workers, and its server.
struct Sidecar {
    test::TempDir dir;
    Database db;
    std::shared_ptr<server::WorkItemHub> hub = std::make_shared<server::WorkItemHub>(64);
    std::shared_ptr<Registry> registry = std::make_shared<Registry>();
    std::unique_ptr<Host> host;
    std::unique_ptr<server::SidecarServer> server;

    // `path`: a database another Sidecar uses too (default: a fresh one).
    explicit Sidecar(const std::string& path = {}) : db(Database::open(path.empty() ? dir.file("sidecar.db") : path)) {
        server::register_activity_sequence(*registry);
        registry->add_activity("cpp_upper", [](std::string s) {
            for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            return s;
        });
        registry->add_orchestrator("cpp_parent", cpp_parent);
        registry->set_default_activity(server::remote_activity(hub));
        registry->set_default_orchestrator(server::remote_orchestrator(hub));
        HostOptions ho;
        ho.lease_duration = 2s;
        ho.poll_interval = 10ms;
        ho.activity_threads = 8;
        host = std::make_unique<Host>(db, registry, ho);
        host->start();
        server::ServerOptions so;
        so.listen = "127.0.0.1:0";
        so.wait_slice = 50ms;
        server = std::make_unique<server::SidecarServer>(db, *host, registry, so, hub);
        server->start();
    }
    ~Sidecar() {
        server->shutdown(1s);
        host->stop();
    }
    std::string target() const { return "127.0.0.1:" + std::to_string(server->port()); }
    Client client() { return host->client(); }
    bool hub_reaches(std::size_t queued, std::size_t outstanding) {
        auto until = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < until) {
            auto st = hub->stats();
            if (st.queued == queued && st.outstanding == outstanding) return true;
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
};

std::string text(const Json& j) { return j.dump(); }

InstanceState state_of(Client& c, const std::string& id) {
    auto st = c.get_status(id);
    REQUIRE(st);
    return *st;
}

// remote_seq: greet (a worker's activity), then cpp_upper (C++), then the C++ orchestration
// activity_sequence as a sub-orchestration; returns the three results; custom status says
// how far it got.
Decision remote_seq(const ReplayView& v) {
    Decision d;
    std::string who = v.input ? Json::parse(*v.input).get<std::string>() : "nobody";
    d.custom_status = "step " + std::to_string(v.results.size());
    if (!v.scheduled.count(1)) {
        d.schedule(1, "greet", text(who));
    } else if (v.done(1) && !v.scheduled.count(2)) {
        d.schedule(2, "cpp_upper", v.results.at(1));
    } else if (v.done(2) && !v.scheduled.count(3)) {
        d.sub_orchestration(3, server::kActivitySequence, v.instance_id + ":child",
                            text(Json{{"activities", Json::array({{{"name", "greet"}, {"input", "child"}}})}}));
    } else if (v.done(3)) {
        if (v.failures.count(3)) {
            d.fail("ChildFailed", v.failures.at(3).errormessage());
        } else {
            d.complete(text(Json::array({Json::parse(v.results.at(1)), Json::parse(v.results.at(2)),
                                         Json::parse(v.results.at(3))})));
        }
    }
    return d;
}

// approval: waits for "approve" with a timeout (a timer of `input` ms): whichever comes first.
Decision approval(const ReplayView& v) {
    Decision d;
    if (v.timers_created.empty()) {
        d.timer(1, v.now_ms + Json::parse(*v.input).get<std::int64_t>());
        return d;
    }
    for (auto& [name, input] : v.events) {
        if (name == "approve") {
            d.complete(text("approved by " + Json::parse(input).get<std::string>()));
            return d;
        }
    }
    if (!v.timers_fired.empty()) d.complete(text("timed out"));
    return d;
}

// waiter: completes with the first "go" event's input.
Decision waiter(const ReplayView& v) {
    Decision d;
    for (auto& [name, input] : v.events) {
        if (name == "go") d.complete(input);
    }
    return d;
}

// counter: continues as new with n + 1 until n reaches 3, then completes with n.
Decision counter(const ReplayView& v) {
    Decision d;
    int n = Json::parse(*v.input).get<int>();
    if (n < 3) {
        d.continue_as_new(text(n + 1));
    } else {
        d.complete(text(n));
    }
    return d;
}

// risky: calls "boom"; input "catch" handles its failure, anything else fails with it.
Decision risky(const ReplayView& v) {
    Decision d;
    if (!v.scheduled.count(1)) {
        d.schedule(1, "boom", "");
    } else if (v.failures.count(1)) {
        if (Json::parse(*v.input) == "catch") {
            d.complete(text("caught: " + v.failures.at(1).errormessage()));
        } else {
            d.fail("Boom", "uncaught: " + v.failures.at(1).errormessage());
        }
    }
    return d;
}

void add_all(ProtocolWorker& w) {
    w.orchestrator("remote_seq", remote_seq);
    w.orchestrator("approval", approval);
    w.orchestrator("waiter", waiter);
    w.orchestrator("counter", counter);
    w.orchestrator("risky", risky);
    w.activity("greet", [](const ::ActivityRequest& r) {
        return text("Hello, " + Json::parse(r.input().value()).get<std::string>());
    });
    w.activity("boom", [](const ::ActivityRequest&) -> std::string { throw std::runtime_error("the fuse blew"); });
}

std::vector<Json> events_of(Client& c, const std::string& id) {
    std::vector<Json> out;
    for (auto& h : c.history(id)) out.push_back(h.event);
    return out;
}

// A raw GetWorkItems stream on a channel of its own (its own peer).
struct RawStream {
    std::unique_ptr<::TaskHubSidecarService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<::WorkItem>> reader;

    explicit RawStream(const std::string& target) {
        grpc::ChannelArguments args;
        args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
        stub = ::TaskHubSidecarService::NewStub(
            grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
        reader = stub->GetWorkItems(&ctx, ::GetWorkItemsRequest{});
    }
    ~RawStream() {
        ctx.TryCancel();
        ::WorkItem w;
        while (reader->Read(&w)) {
        }
        reader->Finish();
    }
    grpc::Status answer(const ::OrchestratorResponse& r) {
        ::CompleteTaskResponse out;
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + 20s);
        return stub->CompleteOrchestratorTask(&c, r, &out);
    }
};

::OrchestratorResponse complete_with(const std::string& id, const std::string& result) {
    ::OrchestratorResponse r;
    r.set_instanceid(id);
    Decision d;
    d.complete(result);
    for (auto& a : d.actions) *r.add_actions() = a;
    return r;
}

}  // namespace

TEST_CASE("a remote orchestration runs in a protocol worker beside C++ code: activities, sub-orchestrations, custom status") {
    Sidecar s;
    ProtocolWorker w(s.target());
    w.keep_requests = true;
    add_all(w);
    w.start();
    auto c = s.client();
    auto id = c.schedule("remote_seq", Json("Ada"));
    auto done = c.wait_for_completion(id, 60s);
    REQUIRE(done.status == Status::Completed);
    CHECK(done.output == Json::array({"Hello, Ada", "HELLO, ADA", Json::array({"Hello, child"})}));
    CHECK(done.custom_status == "step 3");

    // History holds the worker's decisions under its ids, one execution, in order.
    auto h = events_of(c, id);
    std::vector<std::string> types;
    for (auto& e : h) types.push_back(e["t"]);
    CHECK(types == std::vector<std::string>{"ExecutionStarted", "TaskScheduled", "TaskCompleted", "TaskScheduled",
                                            "TaskCompleted", "SubOrchestrationCreated", "SubOrchestrationCompleted",
                                            "ExecutionCompleted"});
    CHECK(h[1]["id"] == 1);
    CHECK(h[3]["name"] == "cpp_upper");
    CHECK(h[5]["instance"] == id + ":child");

    // The requests: new events open with OrchestratorStarted; what was seen comes back as past.
    auto reqs = w.requests();
    std::vector<::OrchestratorRequest> mine;
    for (auto& r : reqs) {
        if (r.instanceid() == id) mine.push_back(r);
    }
    REQUIRE(mine.size() == 4);
    CHECK(mine[0].pastevents_size() == 0);
    REQUIRE(mine[0].newevents_size() == 2);
    CHECK(mine[0].newevents(0).has_orchestratorstarted());
    CHECK(mine[0].newevents(1).has_executionstarted());
    CHECK(mine[0].newevents(1).executionstarted().name() == "remote_seq");
    CHECK(mine[0].executionid().value() == done.execution_id);
    bool completed_is_new = false;
    for (auto& e : mine[1].newevents()) completed_is_new |= e.has_taskcompleted();
    CHECK(completed_is_new);
    bool scheduled_is_past = false;
    for (auto& e : mine[1].pastevents()) scheduled_is_past |= e.has_taskscheduled() && e.eventid() == 1;
    CHECK(scheduled_is_past);
    CHECK(w.refused() == 0);

    // A C++ orchestration calls a remote one as its sub-orchestration.
    auto parent = c.schedule("cpp_parent", Json("Bo"));
    auto p = c.wait_for_completion(parent, 60s);
    REQUIRE(p.status == Status::Completed);
    CHECK(p.output["child"] == Json::array({"Hello, Bo", "HELLO, BO", Json::array({"Hello, child"})}));
}

TEST_CASE("a remote orchestration's external event with a timeout: the event wins, or the timer does") {
    Sidecar s;
    ProtocolWorker w(s.target());
    add_all(w);
    w.start();
    auto c = s.client();
    auto approved = c.schedule("approval", Json(60'000));
    auto timed_out = c.schedule("approval", Json(300));
    c.wait_for_start(approved, 30s);
    c.raise_event(approved, "approve", Json("Grace"));
    CHECK(c.wait_for_completion(approved, 60s).output == "approved by Grace");
    auto t = c.wait_for_completion(timed_out, 60s);
    CHECK(t.output == "timed out");
    bool fired = false;
    for (auto& e : events_of(c, timed_out)) fired |= e["t"] == "TimerFired";
    CHECK(fired);
}

TEST_CASE("a remote orchestration is suspended, resumed and terminated, with or without a worker") {
    Sidecar s;
    auto c = s.client();
    // No worker yet: the first step waits in the hub; terminate needs no worker.
    auto lonely = c.schedule("waiter");
    REQUIRE(s.hub_reaches(1, 0));
    c.terminate(lonely, "nobody came");
    auto t = c.wait_for_completion(lonely, 30s);
    CHECK(t.status == Status::Terminated);
    CHECK(s.hub_reaches(0, 0));  // its step was withdrawn

    ProtocolWorker w(s.target());
    add_all(w);
    w.start();
    auto id = c.schedule("waiter");
    c.wait_for_start(id, 30s);
    c.suspend(id, "hold on");
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (state_of(c, id).status != Status::Suspended && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(state_of(c, id).status == Status::Suspended);
    c.raise_event(id, "go", Json("now"));
    CHECK_THROWS_AS(c.wait_for_completion(id, 300ms), Timeout);  // the event waits in the inbox
    CHECK(state_of(c, id).status == Status::Suspended);
    c.resume(id, "carry on");
    auto r = c.wait_for_completion(id, 60s);
    CHECK(r.status == Status::Completed);
    CHECK(r.output == "now");

    auto doomed = c.schedule("waiter");
    c.wait_for_start(doomed, 30s);
    c.terminate(doomed, "enough");
    CHECK(c.wait_for_completion(doomed, 30s).status == Status::Terminated);
}

TEST_CASE("a remote orchestration continues as new, then is purged") {
    Sidecar s;
    ProtocolWorker w(s.target());
    add_all(w);
    w.start();
    auto c = s.client();
    auto id = c.schedule("counter", Json(0));
    auto done = c.wait_for_completion(id, 60s);
    REQUIRE(done.status == Status::Completed);
    CHECK(done.output == 3);
    auto h = events_of(c, id);
    REQUIRE(!h.empty());
    CHECK(h.front()["t"] == "ExecutionStarted");
    CHECK(h.front()["input"] == 3);  // the last generation's history only
    CHECK(c.purge(id));
    CHECK(!c.get_status(id));
}

TEST_CASE("a remote orchestration sees an activity's failure: caught, or failing it with details") {
    Sidecar s;
    ProtocolWorker w(s.target());
    add_all(w);
    w.start();
    auto c = s.client();
    auto caught = c.schedule("risky", Json("catch"));
    auto uncaught = c.schedule("risky", Json("throw"));
    auto a = c.wait_for_completion(caught, 60s);
    CHECK(a.status == Status::Completed);
    REQUIRE(a.output.is_string());
    CHECK(a.output.get<std::string>().starts_with("caught: "));
    CHECK(a.output.get<std::string>().find("the fuse blew") != std::string::npos);
    auto b = c.wait_for_completion(uncaught, 60s);
    CHECK(b.status == Status::Failed);
    CHECK(b.error["type"] == "Boom");
    CHECK(b.error["message"].get<std::string>().find("uncaught: ") == 0);
    CHECK(b.error["message"].get<std::string>().find("the fuse blew") != std::string::npos);
    bool task_failed = false;
    for (auto& e : events_of(c, uncaught)) {
        if (e["t"] == "TaskFailed") task_failed = e["error"]["type"] == "ActivityError";
    }
    CHECK(task_failed);
}

TEST_CASE("an orchestrator answer from a stream that ended is fenced, the step goes to the next stream") {
    Sidecar s;
    auto c = s.client();
    auto first = std::make_unique<RawStream>(s.target());
    auto id = c.schedule("waiter");
    ::WorkItem item;
    REQUIRE(first->reader->Read(&item));
    REQUIRE(item.has_orchestratorrequest());
    CHECK(item.orchestratorrequest().instanceid() == id);

    // The second stream connects, the first goes away: its step is handed over at once.
    RawStream second(s.target());
    auto late = std::move(first->stub);
    first->ctx.TryCancel();
    ::WorkItem again;
    REQUIRE(second.reader->Read(&again));
    CHECK(again.orchestratorrequest().instanceid() == id);

    // The first worker answers late, on its own connection: refused, nothing recorded.
    ::CompleteTaskResponse out;
    grpc::ClientContext lc;
    lc.set_deadline(std::chrono::system_clock::now() + 20s);
    auto stale = late->CompleteOrchestratorTask(&lc, complete_with(id, "\"stale\""), &out);
    CHECK(stale.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(state_of(c, id).status != Status::Completed);

    REQUIRE(second.answer(complete_with(id, "\"fresh\"")).ok());
    auto done = c.wait_for_completion(id, 30s);
    CHECK(done.output == "fresh");
    // Answered already: a second answer is refused too.
    CHECK(second.answer(complete_with(id, "\"again\"")).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(state_of(c, id).output == "fresh");
    first.reset();
}

TEST_CASE("a remote orchestration's answer to a terminated instance is refused and changes nothing") {
    Sidecar s;
    auto c = s.client();
    RawStream worker(s.target());
    auto id = c.schedule("waiter");
    ::WorkItem item;
    REQUIRE(worker.reader->Read(&item));
    c.terminate(id, "stop");
    REQUIRE(c.wait_for_completion(id, 30s).status == Status::Terminated);
    auto late = worker.answer(complete_with(id, "\"too late\""));
    CHECK(late.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(state_of(c, id).status == Status::Terminated);
}

TEST_CASE("a host that stops working on an instance withdraws its step, another host takes the instance over") {
    Sidecar a;
    RawStream stale(a.target());
    auto c = a.client();
    auto id = c.schedule("waiter");
    ::WorkItem item;
    REQUIRE(stale.reader->Read(&item));
    REQUIRE(item.orchestratorrequest().instanceid() == id);
    // The host goes away without releasing its lease (as a crash would), its server stays.
    a.host->abandon();
    auto late = stale.answer(complete_with(id, "\"from the old host\""));
    CHECK(late.error_code() == grpc::StatusCode::FAILED_PRECONDITION);

    // Another host on the file takes the instance over once the lease has expired.
    Sidecar b(a.db.path());
    ProtocolWorker w(b.target());
    add_all(w);
    w.start();
    auto bc = b.client();
    bc.raise_event(id, "go", Json("from the new host"));
    auto done = bc.wait_for_completion(id, 60s);
    CHECK(done.status == Status::Completed);
    CHECK(done.output == "from the new host");
    int completions = 0;
    for (auto& e : events_of(bc, id)) completions += e["t"] == "ExecutionCompleted";
    CHECK(completions == 1);
}
