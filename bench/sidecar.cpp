// The `sidecar` workload: W1's shape (N instances x 5 sequential activities, C in flight)
// driven through the gRPC sidecar server. The orchestrations and the activities run in a
// Durable Task protocol worker written in C++ (server/protocol_worker.hpp) that decides
// from the history it is sent, as an SDK does: every step of every instance is an
// OrchestratorRequest on the GetWorkItems stream and a CompleteOrchestratorTask, every
// activity an ActivityRequest and a CompleteActivityTask. The clients start and wait through
// the protocol too (StartInstance, WaitForInstanceCompletion). The host commits each step
// like a C++ episode (fsync'd group commit).
#include <atomic>
#include <condition_variable>
#include <functional>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <mutex>

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

    // The worker reads its stream on one thread and answers asynchronously, as an SDK does.
    server::ProtocolWorker worker(target, 0);
    worker.orchestrator(kRemoteSequence, remote_sequence);
    worker.activity("step", [](const ::ActivityRequest& a) { return a.input().value(); });
    worker.start();

    // C lanes, each a chain of asynchronous calls (as an SDK client awaits them): start an
    // instance, wait for its completion, start the next. No thread per lane.
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    auto stub = ::TaskHubSidecarService::NewStub(channel);
    const auto deadline = Clock::now() + options.timeout;
    std::vector<std::string> ids(static_cast<std::size_t>(n));
    std::vector<double> latency(static_cast<std::size_t>(n), -1);
    std::atomic<int> next{0};
    std::atomic<std::int64_t> done{0};
    std::atomic<bool> abort{false};
    std::mutex mu;
    std::condition_variable lanes_done;
    int lanes_left = std::min(c, n);  // guarded by mu

    struct Lane {
        int i = 0;
        Clock::time_point t;
        std::unique_ptr<grpc::ClientContext> ctx;
        ::CreateInstanceRequest start;
        ::CreateInstanceResponse created;
        ::GetInstanceRequest wait;
        ::GetInstanceResponse got;
    };
    std::vector<Lane> lanes(static_cast<std::size_t>(lanes_left));
    std::function<void(Lane&)> start_next;
    auto lane_failed = [&](Lane& l, const grpc::Status& st) {
        abort = true;
        std::lock_guard lock(mu);
        add_error(r, fmt::format("lane failed: instance #{}: {} {}", l.i, static_cast<int>(st.error_code()),
                                 st.error_message()));
        if (--lanes_left == 0) lanes_done.notify_all();
    };
    auto on_completed = [&](Lane& l, const grpc::Status& st) {
        if (!st.ok()) return lane_failed(l, st);
        latency[static_cast<std::size_t>(l.i)] = std::chrono::duration<double, std::milli>(Clock::now() - l.t).count();
        ++done;
        start_next(l);
    };
    auto on_started = [&](Lane& l, const grpc::Status& st) {
        if (!st.ok()) return lane_failed(l, st);
        ids[static_cast<std::size_t>(l.i)] = l.created.instanceid();
        l.wait.set_instanceid(l.created.instanceid());
        l.wait.set_getinputsandoutputs(true);
        l.got.Clear();
        l.ctx = std::make_unique<grpc::ClientContext>();
        l.ctx->set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
        stub->async()->WaitForInstanceCompletion(l.ctx.get(), &l.wait, &l.got,
                                                 [&, lp = &l](grpc::Status s) { on_completed(*lp, s); });
    };
    start_next = [&](Lane& l) {
        l.i = next.fetch_add(1);
        if (l.i >= n || abort.load()) {
            std::lock_guard lock(mu);
            if (--lanes_left == 0) lanes_done.notify_all();
            return;
        }
        l.t = Clock::now();
        l.start.set_name(kRemoteSequence);
        l.start.mutable_input()->set_value(Json{{"steps", steps}}.dump());
        l.created.Clear();
        l.ctx = std::make_unique<grpc::ClientContext>();
        l.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        stub->async()->StartInstance(l.ctx.get(), &l.start, &l.created,
                                     [&, lp = &l](grpc::Status s) { on_started(*lp, s); });
    };
    auto t0 = Clock::now();
    double cpu0 = process_cpu_seconds();
    for (auto& l : lanes) start_next(l);
    {
        std::unique_lock lock(mu);
        lanes_done.wait(lock, [&] { return lanes_left == 0; });
    }
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
