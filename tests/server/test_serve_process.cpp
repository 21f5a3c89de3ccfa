// `durable serve` as a process: it answers on the port it prints, runs the example
// orchestrations, and a SIGTERM with calls open ends them with UNAVAILABLE, exits 0 and
// releases its leases.
#include <doctest/doctest.h>

#include <csignal>
#include <future>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <durable/durable.hpp>

#include "orchestrations/orchestrations.hpp"
#include "orchestrator_service.grpc.pb.h"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

std::string durable_bin() { return std::string(DURABLE_BIN_DIR) + "/durable"; }

// Starts `durable serve` on a free port; returns the port it printed.
int start_serve(test::Process& p) {
    auto line = p.wait_for_prefix("serving ", 30s);
    REQUIRE_MESSAGE(line, "durable serve did not say it was serving");
    auto at = line->rfind(' ');
    return std::stoi(line->substr(at + 1));
}

}  // namespace

TEST_CASE("durable serve: Hello, a C++ orchestration through the protocol, SIGTERM with a wait open") {
    test::TempDir dir;
    auto db = dir.file("serve.db");
    test::Process serve(durable_bin(), {"--db", db, "serve", "--listen", "127.0.0.1:0", "--lease", "2s",
                                        "--log-level", "warn"});
    int port = start_serve(serve);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
    auto stub = ::TaskHubSidecarService::NewStub(channel);
    {
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + 10s);
        google::protobuf::Empty in, out;
        REQUIRE(stub->Hello(&c, in, &out).ok());
    }
    // An approval waits for a decision (a day's timeout): it stays running.
    ::CreateInstanceRequest req;
    req.set_name(orchestrations::kApproval);
    req.set_instanceid("approval-1");
    req.mutable_input()->set_value(orchestrations::example_input(orchestrations::kApproval).dump());
    ::CreateInstanceResponse resp;
    {
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + 10s);
        REQUIRE(stub->StartInstance(&c, req, &resp).ok());
    }
    ::GetInstanceRequest g;
    g.set_instanceid("approval-1");
    ::GetInstanceResponse started;
    {
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + 30s);
        REQUIRE(stub->WaitForInstanceStart(&c, g, &started).ok());
        CHECK(started.orchestrationstate().orchestrationstatus() == ORCHESTRATION_STATUS_RUNNING);
    }

    grpc::ClientContext wait_ctx;
    wait_ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    ::GetInstanceResponse never;
    auto wait = std::async(std::launch::async, [&] { return stub->WaitForInstanceCompletion(&wait_ctx, g, &never); });
    std::this_thread::sleep_for(200ms);  // let the wait reach the server (if not, it gets UNAVAILABLE anyway)
    serve.signal(SIGTERM);
    REQUIRE(wait.wait_for(30s) == std::future_status::ready);
    CHECK(wait.get().error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(serve.wait(30s) == 0);

    // The host released its lease on the way out: another host may take the instance at once.
    auto database = Database::open(db);
    auto state = Client(database).get_status("approval-1");
    REQUIRE(state);
    CHECK(state->status == Status::Running);
    CHECK(!state->lease_owner);

    // `durable audit` shows the RPCs made on the instance, with their correlation ids.
    test::Process audit(durable_bin(), {"--db", db, "audit", "--instance", "approval-1", "--json"});
    auto out = test::read_to_end(audit, 30s);
    REQUIRE(out.code == 0);
    std::vector<std::string> methods;
    std::string text;
    for (const auto& line : out.lines) text += line + "\n";
    for (const auto& j : Json::parse(text)) {  // oldest first
        auto detail = j["detail"].is_string() ? Json::parse(j["detail"].get<std::string>(), nullptr, false) : Json();
        if (detail.is_object()) {
            methods.push_back(j["action"].get<std::string>());
            CHECK(!detail["cid"].get<std::string>().empty());
            CHECK(j["actor"].get<std::string>().rfind("serve@", 0) == 0);
        }
    }
    CHECK(methods == std::vector<std::string>{"StartInstance", "WaitForInstanceStart", "WaitForInstanceCompletion"});
}

TEST_CASE("durable serve refuses an address it cannot listen on") {
    test::TempDir dir;
    test::Process first(durable_bin(), {"--db", dir.file("a.db"), "serve", "--listen", "127.0.0.1:0",
                                        "--log-level", "warn"});
    int port = start_serve(first);
    test::Process second(durable_bin(), {"--db", dir.file("b.db"), "serve", "--listen",
                                         "127.0.0.1:" + std::to_string(port), "--log-level", "off"},
                         test::ProcessOptions{dir.file("second.err")});
    auto done = test::read_to_end(second, 30s);
    CHECK(done.code == 1);
    CHECK(test::read_text(dir.file("second.err")).find("cannot listen") != std::string::npos);
    first.signal(SIGTERM);
    CHECK(first.wait(30s) == 0);
}

TEST_CASE("durable serve --http serves /metrics and the dashboard beside the sidecar") {
    test::TempDir dir;
    test::Process serve(durable_bin(), {"--db", dir.file("s.db"), "serve", "--listen", "127.0.0.1:0", "--http",
                                        "127.0.0.1:0", "--log-level", "warn"});
    auto line = serve.wait_for_prefix("http: listening on 127.0.0.1:", 30s);
    REQUIRE(line);
    int port = std::stoi(line->substr(std::string("http: listening on 127.0.0.1:").size()));
    start_serve(serve);  // the sidecar's line follows
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    auto metrics = c.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->status == 200);
    CHECK(c.Get("/")->status == 200);
    auto hosts = c.Get("/api/v1/hosts");
    REQUIRE(hosts);
    CHECK(hosts->status == 200);
    CHECK(nlohmann::json::parse(hosts->body)["hosts"].size() == 1);
    serve.signal(SIGTERM);
    CHECK(serve.wait(30s) == 0);

    test::Process lonely(durable_bin(), {"--db", dir.file("t.db"), "serve", "--http-token-file", dir.file("none")},
                         test::ProcessOptions{dir.file("lonely.err")});
    CHECK(lonely.wait(30s) == 2);  // a token without --http is a usage error
}
