// The client RPCs of `durable serve` through the generated stubs: each RPC's effect on the
// database, each error status, correlation ids and audit records, waits ended by cancellation,
// deadline and shutdown.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <future>
#include <grpcpp/grpcpp.h>
#include <set>
#include <vector>
#include <thread>

#include "orchestrator_service.grpc.pb.h"
#include "server/sidecar_server.hpp"
#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<Registry> test_registry() {
    auto reg = std::make_shared<Registry>();
    reg->add_activity("upper", [](std::string s) {
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        return s;
    });
    reg->add_orchestrator("shout", [](OrchestrationContext& ctx, std::string in) -> Task<std::string> {
        co_return co_await ctx.call_activity<std::string>("upper", in);
    });
    reg->add_orchestrator("await_go", [](OrchestrationContext& ctx) -> Task<Json> {
        ctx.set_custom_status("waiting");
        auto v = co_await ctx.wait_for_external_event<Json>("go");
        co_return v;
    });
    reg->add_orchestrator("parent", [](OrchestrationContext& ctx) -> Task<Json> {
        co_return co_await ctx.call_sub_orchestration<Json>("await_go");
    });
    reg->add_orchestrator("fails", [](OrchestrationContext&) -> Task<Json> {
        throw std::runtime_error("it broke");
        co_return Json();
    });
    return reg;
}

// A host and a sidecar server on a free port, with a stub connected to it.
struct Served {
    test::Engine engine{test_registry()};
    std::unique_ptr<server::SidecarServer> server;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<::TaskHubSidecarService::Stub> stub;

    explicit Served(server::ServerOptions o = {}) {
        o.listen = "127.0.0.1:0";
        o.wait_slice = 50ms;
        server = std::make_unique<server::SidecarServer>(engine.db, *engine.host, engine.registry, o);
        server->start();
        channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials());
        stub = ::TaskHubSidecarService::NewStub(channel);
    }
    ~Served() { server->shutdown(1s); }

    static std::unique_ptr<grpc::ClientContext> ctx(std::chrono::milliseconds timeout = 30s) {
        auto c = std::make_unique<grpc::ClientContext>();
        c->set_deadline(std::chrono::system_clock::now() + timeout);
        return c;
    }

    grpc::Status start(const std::string& name, const std::string& input, const std::string& id = {},
                       std::string* out_id = nullptr) {
        ::CreateInstanceRequest req;
        req.set_name(name);
        req.mutable_input()->set_value(input);
        req.set_instanceid(id);
        ::CreateInstanceResponse resp;
        auto c = ctx();
        auto s = stub->StartInstance(c.get(), req, &resp);
        if (out_id) *out_id = resp.instanceid();
        return s;
    }
    ::GetInstanceResponse get(const std::string& id, bool io = true) {
        ::GetInstanceRequest req;
        req.set_instanceid(id);
        req.set_getinputsandoutputs(io);
        ::GetInstanceResponse resp;
        auto c = ctx();
        REQUIRE(stub->GetInstance(c.get(), req, &resp).ok());
        return resp;
    }
    ::GetInstanceResponse wait_completion(const std::string& id) {
        ::GetInstanceRequest req;
        req.set_instanceid(id);
        req.set_getinputsandoutputs(true);
        ::GetInstanceResponse resp;
        auto c = ctx();
        auto s = stub->WaitForInstanceCompletion(c.get(), req, &resp);
        REQUIRE_MESSAGE(s.ok(), s.error_message());
        return resp;
    }
    // GetInstance until `status` (a control message takes an episode to show), bounded.
    bool reaches(const std::string& id, ::OrchestrationStatus status) {
        auto until = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < until) {
            if (get(id).orchestrationstate().orchestrationstatus() == status) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }
    grpc::Status raise(const std::string& id, const std::string& name, const std::string& input) {
        ::RaiseEventRequest req;
        req.set_instanceid(id);
        req.set_name(name);
        req.mutable_input()->set_value(input);
        ::RaiseEventResponse resp;
        auto c = ctx();
        return stub->RaiseEvent(c.get(), req, &resp);
    }
    grpc::Status purge(const std::string& id, int* count = nullptr) {
        ::PurgeInstancesRequest req;
        req.set_instanceid(id);
        ::PurgeInstancesResponse resp;
        auto c = ctx();
        auto s = stub->PurgeInstances(c.get(), req, &resp);
        if (count) *count = resp.deletedinstancecount();
        return s;
    }
    // The audit records of `id` once `n` of them are the server's (they ride later commits;
    // the runtime writes records of its own too).
    std::vector<AuditRecord> audit_of(const std::string& id, std::size_t n) {
        auto client = engine.client();
        auto until = std::chrono::steady_clock::now() + 20s;
        for (;;) {
            auto log = client.audit_log(id, 100);
            std::reverse(log.begin(), log.end());  // oldest first
            auto ours = std::count_if(log.begin(), log.end(), [](const AuditRecord& r) {
                return !r.action.empty() && std::isupper(static_cast<unsigned char>(r.action[0]));
            });
            if (static_cast<std::size_t>(ours) >= n || std::chrono::steady_clock::now() >= until) return log;
            std::this_thread::sleep_for(10ms);
        }
    }
};

}  // namespace

TEST_CASE("Hello answers, StartInstance runs a C++ orchestration to completion, GetInstance with and without I/O") {
    Served s;
    {
        google::protobuf::Empty in, out;
        auto c = Served::ctx();
        CHECK(s.stub->Hello(c.get(), in, &out).ok());
    }
    std::string id;
    REQUIRE(s.start("shout", "\"hello\"", "", &id).ok());
    CHECK(!id.empty());  // generated
    auto done = s.wait_completion(id);
    REQUIRE(done.exists());
    CHECK(done.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_COMPLETED);
    CHECK(done.orchestrationstate().name() == "shout");
    CHECK(done.orchestrationstate().input().value() == "\"hello\"");
    CHECK(done.orchestrationstate().output().value() == "\"HELLO\"");
    CHECK(done.orchestrationstate().createdtimestamp().seconds() > 0);

    auto without = s.get(id, false);
    CHECK(without.exists());
    CHECK(without.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_COMPLETED);
    CHECK(!without.orchestrationstate().has_input());
    CHECK(!without.orchestrationstate().has_output());

    // An unknown id: exists = false, as the SDKs need (not NOT_FOUND).
    auto unknown = s.get("no-such-instance");
    CHECK(!unknown.exists());
}

TEST_CASE("StartInstance refuses a reused id, malformed JSON, an empty name and an oversized input") {
    server::ServerOptions o;
    o.max_payload_bytes = 1024;
    Served s(o);
    REQUIRE(s.start("shout", "\"a\"", "order-1").ok());
    auto again = s.start("shout", "\"a\"", "order-1");
    CHECK(again.error_code() == grpc::StatusCode::ALREADY_EXISTS);
    CHECK(again.error_message().find("order-1") != std::string::npos);

    auto bad_json = s.start("shout", "{not json", "order-2");
    CHECK(bad_json.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(bad_json.error_message().find("input is not JSON") != std::string::npos);
    CHECK(!s.get("order-2").exists());  // nothing was created

    CHECK(s.start("", "1").error_code() == grpc::StatusCode::INVALID_ARGUMENT);

    auto big = s.start("shout", "\"" + std::string(2000, 'x') + "\"", "order-3");
    CHECK(big.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(big.error_message().find("1024-byte limit") != std::string::npos);
    CHECK(!s.get("order-3").exists());
}

TEST_CASE("a scheduled start stays pending, WaitForInstanceStart returns once it runs") {
    Served s;
    ::CreateInstanceRequest req;
    req.set_name("await_go");
    req.set_instanceid("later");
    auto at = std::chrono::system_clock::now() + std::chrono::hours(1);
    req.mutable_scheduledstarttimestamp()->set_seconds(std::chrono::system_clock::to_time_t(at));
    ::CreateInstanceResponse resp;
    auto c = Served::ctx();
    REQUIRE(s.stub->StartInstance(c.get(), req, &resp).ok());
    CHECK(s.get("later").orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_PENDING);

    // Epoch 0 means now.
    req.set_instanceid("now");
    req.mutable_scheduledstarttimestamp()->set_seconds(0);
    auto c2 = Served::ctx();
    REQUIRE(s.stub->StartInstance(c2.get(), req, &resp).ok());
    ::GetInstanceRequest w;
    w.set_instanceid("now");
    ::GetInstanceResponse started;
    auto c3 = Served::ctx();
    REQUIRE(s.stub->WaitForInstanceStart(c3.get(), w, &started).ok());
    CHECK(started.exists());
    CHECK(started.orchestrationstate().orchestrationstatus() != ORCHESTRATION_STATUS_PENDING);
    CHECK(started.orchestrationstate().customstatus().value() == "waiting");  // the raw string
}

TEST_CASE("RaiseEvent delivers, to a finished instance FAILED_PRECONDITION, to an unknown one NOT_FOUND") {
    Served s;
    REQUIRE(s.start("await_go", "", "e1").ok());
    CHECK(s.raise("e1", "", "1").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(s.raise("e1", "go", "{bad").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    REQUIRE(s.raise("e1", "go", "{\"ok\":true}").ok());
    auto done = s.wait_completion("e1");
    CHECK(done.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_COMPLETED);
    CHECK(done.orchestrationstate().output().value() == "{\"ok\":true}");

    auto late = s.raise("e1", "go", "1");
    CHECK(late.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(s.raise("nobody", "go", "1").error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("Suspend and Resume, Terminate (recursive) with its output, errors for unknown and finished instances") {
    Served s;
    REQUIRE(s.start("await_go", "", "sr").ok());
    REQUIRE(s.reaches("sr", ORCHESTRATION_STATUS_RUNNING));
    {
        ::SuspendRequest req;
        req.set_instanceid("sr");
        ::SuspendResponse resp;
        auto c = Served::ctx();
        REQUIRE(s.stub->SuspendInstance(c.get(), req, &resp).ok());
    }
    CHECK(s.reaches("sr", ORCHESTRATION_STATUS_SUSPENDED));
    {
        ::ResumeRequest req;
        req.set_instanceid("sr");
        ::ResumeResponse resp;
        auto c = Served::ctx();
        REQUIRE(s.stub->ResumeInstance(c.get(), req, &resp).ok());
    }
    CHECK(s.reaches("sr", ORCHESTRATION_STATUS_RUNNING));

    REQUIRE(s.start("parent", "", "p").ok());
    std::string child;
    auto until = std::chrono::steady_clock::now() + 20s;
    while (child.empty() && std::chrono::steady_clock::now() < until) {
        auto page = s.engine.client().query(QueryFilter{{Status::Running}, std::string("await_go"), {}, {}});
        for (auto& i : page.instances) {
            if (i.parent_id == std::optional<std::string>("p")) child = i.id;
        }
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(!child.empty());
    ::TerminateRequest t;
    t.set_instanceid("p");
    t.mutable_output()->set_value("\"enough\"");
    t.set_recursive(true);
    ::TerminateResponse tr;
    auto c = Served::ctx();
    REQUIRE(s.stub->TerminateInstance(c.get(), t, &tr).ok());
    auto done = s.wait_completion("p");
    CHECK(done.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_TERMINATED);
    CHECK(done.orchestrationstate().output().value() == "\"enough\"");
    CHECK(s.wait_completion(child).orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_TERMINATED);

    auto c2 = Served::ctx();
    CHECK(s.stub->TerminateInstance(c2.get(), t, &tr).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    t.set_instanceid("nobody");
    auto c3 = Served::ctx();
    CHECK(s.stub->TerminateInstance(c3.get(), t, &tr).error_code() == grpc::StatusCode::NOT_FOUND);
    ::SuspendRequest sq;
    sq.set_instanceid("nobody");
    ::SuspendResponse sp;
    auto c4 = Served::ctx();
    CHECK(s.stub->SuspendInstance(c4.get(), sq, &sp).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("a failed orchestration reports its failure details") {
    Served s;
    REQUIRE(s.start("fails", "", "f").ok());
    auto done = s.wait_completion("f");
    CHECK(done.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_FAILED);
    CHECK(!done.orchestrationstate().failuredetails().errortype().empty());
    CHECK(done.orchestrationstate().failuredetails().errormessage().find("it broke") != std::string::npos);
}

TEST_CASE("PurgeInstances by id (running: FAILED_PRECONDITION) and by filter") {
    Served s;
    REQUIRE(s.start("await_go", "", "keep").ok());
    REQUIRE(s.reaches("keep", ORCHESTRATION_STATUS_RUNNING));
    auto running = s.purge("keep");
    CHECK(running.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(s.get("keep").exists());

    for (auto id : {"a1", "a2", "a3"}) {
        REQUIRE(s.start("shout", "\"x\"", id).ok());
        s.wait_completion(id);
    }
    int n = -1;
    REQUIRE(s.purge("a1", &n).ok());
    CHECK(n == 1);
    CHECK(!s.get("a1").exists());
    REQUIRE(s.purge("a1", &n).ok());
    CHECK(n == 0);

    ::PurgeInstancesRequest bad;
    bad.mutable_purgeinstancefilter()->add_runtimestatus(ORCHESTRATION_STATUS_RUNNING);
    ::PurgeInstancesResponse resp;
    auto c = Served::ctx();
    CHECK(s.stub->PurgeInstances(c.get(), bad, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

    ::PurgeInstancesRequest req;
    req.mutable_purgeinstancefilter()->add_runtimestatus(ORCHESTRATION_STATUS_COMPLETED);
    auto c2 = Served::ctx();
    REQUIRE(s.stub->PurgeInstances(c2.get(), req, &resp).ok());
    CHECK(resp.deletedinstancecount() == 2);
    CHECK(!s.get("a2").exists());
    CHECK(!s.get("a3").exists());
    CHECK(s.get("keep").exists());
}

TEST_CASE("QueryInstances: status filter, page size with continuation token, id prefix, inputs on request") {
    Served s;
    for (int i = 0; i < 5; ++i) {
        std::string id = "q-" + std::to_string(i);
        REQUIRE(s.start("shout", "\"q\"", id).ok());
        s.wait_completion(id);
    }
    REQUIRE(s.start("await_go", "", "r-0").ok());
    REQUIRE(s.reaches("r-0", ORCHESTRATION_STATUS_RUNNING));

    std::set<std::string> seen;
    std::string token;
    int pages = 0;
    do {
        ::QueryInstancesRequest req;
        req.mutable_query()->add_runtimestatus(ORCHESTRATION_STATUS_COMPLETED);
        req.mutable_query()->set_maxinstancecount(2);
        if (!token.empty()) req.mutable_query()->mutable_continuationtoken()->set_value(token);
        ::QueryInstancesResponse resp;
        auto c = Served::ctx();
        REQUIRE(s.stub->QueryInstances(c.get(), req, &resp).ok());
        CHECK(resp.orchestrationstate_size() <= 2);
        for (auto& st : resp.orchestrationstate()) {
            CHECK(st.orchestrationstatus() == ORCHESTRATION_STATUS_COMPLETED);
            CHECK(!st.has_input());
            seen.insert(st.instanceid());
        }
        token = resp.has_continuationtoken() ? resp.continuationtoken().value() : "";
        ++pages;
    } while (!token.empty() && pages < 10);
    CHECK(seen == std::set<std::string>{"q-0", "q-1", "q-2", "q-3", "q-4"});
    CHECK(pages == 3);

    ::QueryInstancesRequest req;
    req.mutable_query()->mutable_instanceidprefix()->set_value("r-");
    req.mutable_query()->set_fetchinputsandoutputs(true);
    ::QueryInstancesResponse resp;
    auto c = Served::ctx();
    REQUIRE(s.stub->QueryInstances(c.get(), req, &resp).ok());
    REQUIRE(resp.orchestrationstate_size() == 1);
    CHECK(resp.orchestrationstate(0).instanceid() == "r-0");
    CHECK(!resp.has_continuationtoken());
}

TEST_CASE("the correlation id is taken from traceparent or x-correlation-id, echoed, and audited") {
    Served s;
    ::CreateInstanceRequest req;
    req.set_name("shout");
    req.set_instanceid("audited");
    req.mutable_input()->set_value("\"a\"");
    ::CreateInstanceResponse resp;
    grpc::ClientContext c;
    c.AddMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    REQUIRE(s.stub->StartInstance(&c, req, &resp).ok());
    auto echoed = c.GetServerInitialMetadata().find("x-correlation-id");
    REQUIRE(echoed != c.GetServerInitialMetadata().end());
    CHECK(std::string(echoed->second.data(), echoed->second.size()) == "4bf92f3577b34da6a3ce929d0e0e4736");

    ::RaiseEventRequest ev;
    ev.set_instanceid("audited");
    ev.set_name("x");
    ::RaiseEventResponse er;
    grpc::ClientContext c2;
    c2.AddMetadata("x-correlation-id", "req-42");
    s.stub->RaiseEvent(&c2, ev, &er);  // the instance may have finished: audited either way
    auto echoed2 = c2.GetServerInitialMetadata().find("x-correlation-id");
    REQUIRE(echoed2 != c2.GetServerInitialMetadata().end());
    CHECK(std::string(echoed2->second.data(), echoed2->second.size()) == "req-42");

    grpc::ClientContext c3;  // none given: a new one is made up and echoed
    REQUIRE(s.stub->StartInstance(&c3, req, &resp).error_code() == grpc::StatusCode::ALREADY_EXISTS);
    auto echoed3 = c3.GetServerInitialMetadata().find("x-correlation-id");
    REQUIRE(echoed3 != c3.GetServerInitialMetadata().end());
    std::string made_up(echoed3->second.data(), echoed3->second.size());
    CHECK(!made_up.empty());

    auto log = s.audit_of("audited", 3);
    std::vector<Json> starts, raises;
    for (auto& r : log) {
        if (r.action != "StartInstance" && r.action != "RaiseEvent") continue;  // the runtime's own records
        REQUIRE(r.detail);
        auto d = Json::parse(*r.detail);
        CHECK(d.contains("ms"));
        CHECK(d.contains("items"));
        if (r.action == "StartInstance") starts.push_back(d);
        if (r.action == "RaiseEvent") raises.push_back(d);
        CHECK(r.actor.find("serve") == 0);
    }
    REQUIRE(starts.size() == 2);
    CHECK(starts[0]["cid"] == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(starts[0]["outcome"] == "OK");
    CHECK(starts[0]["items"] == 1);
    CHECK(starts[1]["cid"] == made_up);
    CHECK(starts[1]["outcome"] == "ALREADY_EXISTS");
    CHECK(starts[1]["error"].get<std::string>().find("exists already") != std::string::npos);
    REQUIRE(raises.size() == 1);
    CHECK(raises[0]["cid"] == "req-42");
}

TEST_CASE("a wait ends with its deadline, with the caller's cancellation, and with UNAVAILABLE on shutdown") {
    Served s;
    REQUIRE(s.start("await_go", "", "w").ok());
    ::GetInstanceRequest req;
    req.set_instanceid("w");
    ::GetInstanceResponse resp;
    {
        auto c = Served::ctx(300ms);
        CHECK(s.stub->WaitForInstanceCompletion(c.get(), req, &resp).error_code() ==
              grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    {
        grpc::ClientContext c;
        auto call = std::async(std::launch::async, [&] { return s.stub->WaitForInstanceCompletion(&c, req, &resp); });
        std::this_thread::sleep_for(100ms);
        c.TryCancel();
        REQUIRE(call.wait_for(10s) == std::future_status::ready);
        CHECK(call.get().error_code() == grpc::StatusCode::CANCELLED);
    }
    // Unknown instance: the wait answers at once with exists = false.
    ::GetInstanceRequest none;
    none.set_instanceid("nobody");
    auto cn = Served::ctx();
    REQUIRE(s.stub->WaitForInstanceCompletion(cn.get(), none, &resp).ok());
    CHECK(!resp.exists());

    // A wait open while the server stops ends with UNAVAILABLE; later calls fail too.
    grpc::ClientContext c;
    std::promise<void> sent;
    auto call = std::async(std::launch::async, [&] {
        sent.set_value();
        return s.stub->WaitForInstanceCompletion(&c, req, &resp);
    });
    sent.get_future().wait();
    // Give the call a moment to reach the server; if it arrives after shutdown began the
    // answer is UNAVAILABLE all the same, so the assertion does not depend on the timing.
    std::this_thread::sleep_for(100ms);
    s.server->shutdown(5s);
    REQUIRE(call.wait_for(10s) == std::future_status::ready);
    CHECK(call.get().error_code() == grpc::StatusCode::UNAVAILABLE);
    google::protobuf::Empty in, out;
    auto c2 = Served::ctx(2s);
    CHECK(s.stub->Hello(c2.get(), in, &out).error_code() == grpc::StatusCode::UNAVAILABLE);
}
