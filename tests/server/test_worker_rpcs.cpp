// The worker RPCs through the generated stubs: a C++ orchestration's activities that the host
// lacks run in a stub worker over GetWorkItems / CompleteActivityTask; failures relayed;
// stale and unknown completions fenced; backpressure; a cancelled stream's item handed to
// another stream at once; streams ended with UNAVAILABLE on shutdown.
#include <doctest/doctest.h>

#include <condition_variable>
#include <deque>
#include <grpcpp/grpcpp.h>
#include <mutex>
#include <thread>

#include "orchestrator_service.grpc.pb.h"
#include "server/activity_sequence.hpp"
#include "server/remote_activity.hpp"
#include "server/sidecar_server.hpp"
#include "server/work_items.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

// A host whose activities all go to connected workers, and its sidecar server.
struct Remote {
    test::TempDir dir;
    Database db = Database::open(dir.file("remote.db"));
    std::shared_ptr<server::WorkItemHub> hub;
    std::shared_ptr<Registry> registry = std::make_shared<Registry>();
    std::unique_ptr<Host> host;
    std::unique_ptr<server::SidecarServer> server;
    std::unique_ptr<::TaskHubSidecarService::Stub> stub;

    explicit Remote(std::size_t max_outstanding = 64) : hub(std::make_shared<server::WorkItemHub>(max_outstanding)) {
        server::register_activity_sequence(*registry);
        registry->set_default_activity(server::remote_activity(hub));
        HostOptions ho;
        ho.lease_duration = 2s;
        ho.poll_interval = 10ms;
        ho.activity_threads = 8;
        host = std::make_unique<Host>(db, registry, ho);
        host->start();
        server::ServerOptions so;
        so.listen = "127.0.0.1:0";
        so.wait_slice = 50ms;
        so.max_outstanding_per_stream = max_outstanding;
        server = std::make_unique<server::SidecarServer>(db, *host, registry, so, hub);
        server->start();
        stub = ::TaskHubSidecarService::NewStub(
            grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
    }
    ~Remote() {
        server->shutdown(1s);
        host->stop();
    }

    std::string start(const Json& steps) {
        return host->client().schedule(server::kActivitySequence, Json{{"activities", steps}});
    }
    grpc::Status complete(const std::string& instance, int task, const std::string& result) {
        ::ActivityResponse r;
        r.set_instanceid(instance);
        r.set_taskid(task);
        r.mutable_result()->set_value(result);
        ::CompleteTaskResponse out;
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + 10s);
        return stub->CompleteActivityTask(&c, r, &out);
    }
    // Until the hub holds `queued` and `outstanding` items (a state, reached within a bound).
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

// A worker's GetWorkItems stream, read on a thread of its own.
struct StubWorker {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<::WorkItem>> reader;
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<::WorkItem> items;  // guarded by mu
    bool done = false;             // guarded by mu
    grpc::Status status;           // set once done

    explicit StubWorker(::TaskHubSidecarService::Stub& stub) {
        reader = stub.GetWorkItems(&ctx, ::GetWorkItemsRequest{});
        thread = std::thread([this] {
            ::WorkItem w;
            while (reader->Read(&w)) {
                std::lock_guard lock(mu);
                items.push_back(w);
                cv.notify_all();
            }
            auto s = reader->Finish();
            std::lock_guard lock(mu);
            status = s;
            done = true;
            cv.notify_all();
        });
    }
    ~StubWorker() {
        ctx.TryCancel();
        thread.join();
    }
    std::optional<::WorkItem> next(std::chrono::milliseconds timeout = 20s) {
        std::unique_lock lock(mu);
        if (!cv.wait_for(lock, timeout, [&] { return !items.empty() || done; }) || items.empty()) return std::nullopt;
        auto w = items.front();
        items.pop_front();
        return w;
    }
    bool finished(grpc::StatusCode* code, std::chrono::milliseconds timeout = 20s) {
        std::unique_lock lock(mu);
        if (!cv.wait_for(lock, timeout, [&] { return done; })) return false;
        *code = status.error_code();
        return true;
    }
};

}  // namespace

TEST_CASE("a C++ orchestration's activities run in a stream worker, its answers complete them") {
    Remote r;
    StubWorker w(*r.stub);
    auto id = r.start(Json::array({{{"name", "greet"}, {"input", "Tokyo"}}, {{"name", "greet"}, {"input", "Lima"}}}));
    for (const char* city : {"Tokyo", "Lima"}) {
        auto item = w.next();
        REQUIRE(item);
        REQUIRE(item->has_activityrequest());
        const auto& a = item->activityrequest();
        CHECK(a.name() == "greet");
        CHECK(a.input().value() == Json(city).dump());
        CHECK(a.orchestrationinstance().instanceid() == id);
        REQUIRE(r.complete(id, a.taskid(), Json(std::string("Hello, ") + city).dump()).ok());
    }
    auto done = r.host->client().wait_for_completion(id, 30s);
    CHECK(done.status == Status::Completed);
    CHECK(done.output == Json::array({"Hello, Tokyo", "Hello, Lima"}));
}

TEST_CASE("a worker's failure is relayed as the activity's failure, never retried") {
    Remote r;
    StubWorker w(*r.stub);
    auto id = r.start(Json::array({{{"name", "charge"}, {"input", 5}}}));
    auto item = w.next();
    REQUIRE(item);
    ::ActivityResponse resp;
    resp.set_instanceid(id);
    resp.set_taskid(item->activityrequest().taskid());
    resp.mutable_failuredetails()->set_errortype("KeyError");
    resp.mutable_failuredetails()->set_errormessage("no such card");
    resp.mutable_failuredetails()->mutable_stacktrace()->set_value("at charge (pay.py:3)");
    ::CompleteTaskResponse out;
    grpc::ClientContext c;
    REQUIRE(r.stub->CompleteActivityTask(&c, resp, &out).ok());
    auto done = r.host->client().wait_for_completion(id, 30s);
    CHECK(done.status == Status::Failed);
    CHECK(done.error["message"].get<std::string>().find("no such card") != std::string::npos);
    int failures = 0;
    for (auto& h : r.host->client().history(id)) {
        if (h.event["t"] == "TaskFailed") {
            ++failures;
            CHECK(h.event["error"]["type"] == "KeyError");
            CHECK(h.event["error"]["details"] == "at charge (pay.py:3)");
        }
    }
    CHECK(failures == 1);
    CHECK(!w.next(200ms));  // not sent again
}

TEST_CASE("stale and unknown completions are fenced with FAILED_PRECONDITION and change nothing") {
    Remote r;
    StubWorker w(*r.stub);
    auto id = r.start(Json::array({{{"name", "once"}}, {{"name", "twice"}}}));
    auto item = w.next();
    REQUIRE(item);
    int task = item->activityrequest().taskid();
    REQUIRE(r.complete(id, task, "1").ok());
    auto stale = r.complete(id, task, "2");  // the same task again: answered already
    CHECK(stale.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(stale.error_message().find("changes nothing") != std::string::npos);
    CHECK(r.complete(id, 999, "3").error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(r.complete("", 1, "3").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    ::OrchestratorResponse o;
    o.set_instanceid(id);
    ::CompleteTaskResponse out;
    grpc::ClientContext c;
    CHECK(r.stub->CompleteOrchestratorTask(&c, o, &out).error_code() == grpc::StatusCode::FAILED_PRECONDITION);

    auto second = w.next();
    REQUIRE(second);
    REQUIRE(r.complete(id, second->activityrequest().taskid(), "\"b\"").ok());
    auto done = r.host->client().wait_for_completion(id, 30s);
    CHECK(done.output == Json::array({1, "b"}));  // the stale answer "2" is nowhere
}

TEST_CASE("backpressure: a stream with max_outstanding unanswered items gets no more until it answers") {
    Remote r(1);
    StubWorker w(*r.stub);
    auto a = r.start(Json::array({{{"name", "x"}}}));
    auto b = r.start(Json::array({{{"name", "x"}}}));
    auto first = w.next();
    REQUIRE(first);
    REQUIRE(r.hub_reaches(1, 1));  // the other one waits in the queue, not on the stream
    CHECK(!w.next(200ms));
    auto first_id = first->activityrequest().orchestrationinstance().instanceid();
    REQUIRE(r.complete(first_id, first->activityrequest().taskid(), "1").ok());
    auto second = w.next();
    REQUIRE(second);
    auto second_id = second->activityrequest().orchestrationinstance().instanceid();
    CHECK(second_id != first_id);
    CHECK(((first_id == a && second_id == b) || (first_id == b && second_id == a)));
    REQUIRE(r.complete(second_id, second->activityrequest().taskid(), "2").ok());
    CHECK(r.host->client().wait_for_completion(a, 30s).status == Status::Completed);
    CHECK(r.host->client().wait_for_completion(b, 30s).status == Status::Completed);
}

TEST_CASE("a cancelled stream's unanswered item goes to another stream at once, shutdown ends streams") {
    Remote r(1);
    auto first = std::make_unique<StubWorker>(*r.stub);
    auto id = r.start(Json::array({{{"name", "slow"}}}));
    auto item = first->next();
    REQUIRE(item);
    auto second = std::make_unique<StubWorker>(*r.stub);
    first.reset();  // cancels its stream
    // Handed over without waiting for any lease (the lease is 2 s; the bound here is generous
    // only so a loaded machine does not fail the test: what matters is that it arrives).
    auto again = second->next();
    REQUIRE(again);
    CHECK(again->activityrequest().taskid() == item->activityrequest().taskid());
    REQUIRE(r.complete(id, again->activityrequest().taskid(), "\"done\"").ok());
    CHECK(r.host->client().wait_for_completion(id, 30s).output == Json::array({"done"}));

    r.server->shutdown(5s);
    grpc::StatusCode code = grpc::StatusCode::OK;
    REQUIRE(second->finished(&code));
    CHECK(code == grpc::StatusCode::UNAVAILABLE);
}
