// The `sidecar` workload: W1's shape (N instances x 5 sequential activities, C in flight)
// driven through the gRPC sidecar server. The orchestrations and the activities run in a
// Durable Task protocol worker written in C++ (server/protocol_worker.hpp) that decides
// from the history it is sent, as an SDK does: every step of every instance is an
// OrchestratorRequest on the GetWorkItems stream and a CompleteOrchestratorTask, every
// activity an ActivityRequest and a CompleteActivityTask. The clients start and wait through
// the protocol too (StartInstance, WaitForInstanceCompletion). The host commits each step
// like a C++ episode (fsync'd group commit).
#include <atomic>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <latch>
#include <mutex>
#include <thread>

#include "bench.hpp"
#include "orchestrations.hpp"
#include "server/protocol_worker.hpp"
#include "server/remote_activity.hpp"
#include "server/remote_orchestrator.hpp"
#include "server/sidecar_server.hpp"
#include "server/work_items.hpp"

namespace durable::bench {

namespace {

constexpr const char* kRemoteSequence = "remote_sequence";

// Decides from the history alone: the next activity until `steps` results, then the output.
server::Decision remote_sequence(const server::ReplayView& v) {
    server::Decision d;
    const int steps = v.input ? Json::parse(*v.input).value("steps", 5) : 5;
    const int done = static_cast<int>(v.results.size());
    if (!v.failures.empty()) {
        d.fail("ActivityFailed", v.failures.begin()->second.errormessage());
    } else if (done >= steps) {
        d.complete(Json{{"v", done}, {"host", "protocol-worker"}}.dump());
    } else if (static_cast<int>(v.scheduled.size()) == done) {
        d.schedule(v.next_id, "step", std::to_string(done));
    }
    return d;
}

}  // namespace

Result run_sidecar(const Options& options) {
    const int n = options.instances.value_or(2000), c = options.concurrency.value_or(50), steps = 5;
    Result r;
    DbFile file(options, "sidecar");
    Database db = open_database(options, file.path());
    auto hub = std::make_shared<server::WorkItemHub>(64);
    auto registry = std::make_shared<Registry>();
    registry->set_default_activity(server::remote_activity(hub));
    registry->set_default_orchestrator(server::remote_orchestrator(hub));
    auto ho = host_options(options, "bench-sidecar");
    ho.activity_threads = std::max(ho.activity_threads, c + 8);  // a remote activity holds a thread while out
    Host host(db, registry, ho);
    host.start();
    server::ServerOptions so;
    so.listen = "127.0.0.1:0";
    so.max_outstanding_per_stream = 256;
    server::SidecarServer srv(db, host, registry, so, hub);
    srv.start();
    const std::string target = fmt::format("127.0.0.1:{}", srv.port());
    progress(fmt::format("sidecar: {} instances x {} activities through gRPC on {}, {} in flight, sync={}, db {}", n,
                         steps, target, c, options.sync, file.path()));

    // Threads: a completion blocks its thread until the answer is durable (an SDK awaits it
    // asynchronously); enough of them that the fsync, not the worker, sets the pace.
    server::ProtocolWorker worker(target, 64);
    worker.orchestrator(kRemoteSequence, remote_sequence);
    worker.activity("step", [](const ::ActivityRequest& a) { return a.input().value(); });
    worker.start();

    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    auto stub = ::TaskHubSidecarService::NewStub(channel);
    const auto deadline = Clock::now() + options.timeout;
    std::vector<std::string> ids(static_cast<std::size_t>(n));
    std::vector<double> latency(static_cast<std::size_t>(n), -1);
    std::atomic<int> next{0};
    std::atomic<std::int64_t> done{0};
    std::atomic<bool> abort{false};
    std::mutex mu;
    std::latch go(1);
    std::vector<std::thread> lanes;
    for (int lane = 0; lane < std::min(c, n); ++lane) {
        lanes.emplace_back([&] {
            go.wait();
            for (;;) {
                int i = next.fetch_add(1);
                if (i >= n || abort.load()) break;
                auto t = Clock::now();
                ::CreateInstanceRequest req;
                req.set_name(kRemoteSequence);
                req.mutable_input()->set_value(Json{{"steps", steps}}.dump());
                ::CreateInstanceResponse created;
                grpc::ClientContext sc;
                sc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
                auto st = stub->StartInstance(&sc, req, &created);
                ::GetInstanceResponse got;
                if (st.ok()) {
                    ids[static_cast<std::size_t>(i)] = created.instanceid();
                    ::GetInstanceRequest wait;
                    wait.set_instanceid(created.instanceid());
                    wait.set_getinputsandoutputs(true);
                    grpc::ClientContext wc;
                    wc.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
                    st = stub->WaitForInstanceCompletion(&wc, wait, &got);
                }
                if (!st.ok()) {
                    abort = true;
                    std::lock_guard lock(mu);
                    add_error(r, fmt::format("lane failed: instance #{}: {} {}", i, static_cast<int>(st.error_code()),
                                             st.error_message()));
                    break;
                }
                latency[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
                ++done;
            }
        });
    }
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    go.count_down();
    for (auto& t : lanes) t.join();
    double seconds = seconds_since(t0);
    double cpu = process_cpu_seconds() - cpu0;
    worker.stop();
    std::vector<double> latencies;
    for (double l : latency) {
        if (l >= 0) latencies.push_back(l);
    }
    std::erase(ids, std::string());

    auto client = host.client();
    auto check = [&](const InstanceState& s) { return check_sequence_output(s.output, steps); };
    std::int64_t duplicates = verify_instances(r, client, ids, check);
    if (done.load() != n) add_error(r, fmt::format("incomplete: {} of {} instances completed", done.load(), n));
    r.line["host_stats"] = host_stats_json(host, db);
    r.line["machine"] = machine_info(file);
    r.line["concurrency"] = c;
    r.line["work_items"] = worker.items();
    r.line["refused_completions"] = worker.refused();
    r.line["cpu_seconds"] = std::round(cpu * 1e4) / 1e4;
    if (done.load() > 0) {
        r.line["cpu_us_per_orchestration"] = std::round(cpu * 1e6 / static_cast<double>(done.load()));
        r.line["cpu_us_per_work_item"] = std::round(cpu * 1e6 / static_cast<double>(std::max<std::int64_t>(1, worker.items())));
    }
    fill_common(r, options, "sidecar", n, static_cast<std::int64_t>(n) * steps, seconds, latencies, done.load(),
                duplicates);
    srv.shutdown(std::chrono::seconds(2));
    host.stop();
    return r;
}

}  // namespace durable::bench
