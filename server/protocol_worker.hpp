// server/protocol_worker.hpp — a Durable Task worker written in C++ against the sidecar
// protocol: what an SDK does, in small. It opens a GetWorkItems stream, runs each
// orchestrator request through a decider (a function of the history it is sent, replayed
// from the start each time, as an SDK replays) and each activity request through a handler,
// and answers with CompleteOrchestratorTask / CompleteActivityTask.
//
// Used by the tests (remote orchestrations side by side with C++ ones, fencing) and by
// durable-bench's `sidecar` workload. It speaks only the protocol: no durable runtime inside.
//
// The stream is read and the answers are sent asynchronously (gRPC's callback API: a
// CompleteOrchestratorTask returns once it is durable, and no thread waits for it). With
// threads = 0 the handlers run on the gRPC thread that read the item, one item after another,
// with no hand-off per item; else on `threads` threads of the worker's own.
//
// Thread safety: start() and stop() from one thread; the handlers run on the worker's
// threads, several at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <grpcpp/grpcpp.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator_service.grpc.pb.h"

namespace durable::server {

// The history of an orchestrator request, read as an SDK's replay reads it.
struct ReplayView {
    std::string instance_id, name;
    std::optional<std::string> input;                        // the execution's input (JSON text)
    std::map<int, std::string> scheduled;                    // task id -> activity / orchestration name
    std::map<int, std::string> results;                      // task id -> result JSON text ("" = null)
    std::map<int, ::TaskFailureDetails> failures;            // task id -> failure
    std::vector<int> timers_created, timers_fired;
    std::vector<std::pair<std::string, std::string>> events; // raised events: name, input
    int next_id = 1;                                         // the id the next action takes
    std::int64_t now_ms = 0;                                 // the last OrchestratorStarted

    static ReplayView of(const ::OrchestratorRequest& req);
    bool done(int id) const { return results.count(id) || failures.count(id); }
};

// What a decider answers: new actions (ids from ReplayView::next_id on) and maybe an end.
struct Decision {
    std::vector<::OrchestratorAction> actions;
    std::optional<std::string> custom_status;
    void schedule(int id, const std::string& activity, const std::string& input_json);
    void sub_orchestration(int id, const std::string& name, const std::string& instance_id, const std::string& input);
    void timer(int id, std::int64_t fire_at_ms);
    void complete(const std::string& result_json);
    void fail(const std::string& type, const std::string& message);
    void continue_as_new(const std::string& input_json);
};

class ProtocolWorker {
public:
    using Decider = std::function<Decision(const ReplayView&)>;
    // Returns the result's JSON text, or throws std::exception (a failure, its what() the message).
    using Activity = std::function<std::string(const ::ActivityRequest&)>;

    ProtocolWorker(std::string target, int threads = 4);
    ~ProtocolWorker();  // stops
    ProtocolWorker(const ProtocolWorker&) = delete;
    ProtocolWorker& operator=(const ProtocolWorker&) = delete;

    void orchestrator(const std::string& name, Decider d) { deciders_[name] = std::move(d); }
    void activity(const std::string& name, Activity a) { activities_[name] = std::move(a); }

    void start();
    void stop();  // cancels the stream and joins

    // Answers and how the server took them.
    std::int64_t answered() const { return answered_.load(); }
    std::int64_t refused() const { return refused_.load(); }
    std::int64_t items() const { return items_.load(); }
    // The orchestrator requests received, oldest first (kept only with keep_requests = true).
    bool keep_requests = false;
    std::vector<::OrchestratorRequest> requests() const;
    // The status of the last refused completion.
    grpc::Status last_refusal() const;

private:
    class Reader;
    void work_loop();
    void handle(const ::WorkItem& w);
    struct Answer;
    void answered(Answer* a, const grpc::Status& status);

    std::string target_;
    int threads_;
    std::map<std::string, Decider> deciders_;
    std::map<std::string, Activity> activities_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<::TaskHubSidecarService::Stub> stub_;
    std::unique_ptr<grpc::ClientContext> stream_ctx_;
    std::unique_ptr<Reader> reader_;  // the stream, read on gRPC's threads
    std::vector<std::thread> workers_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<::WorkItem> queue_;                 // guarded by mu_
    std::vector<::OrchestratorRequest> requests_;  // guarded by mu_
    grpc::Status last_refusal_;                    // guarded by mu_
    bool stopping_ = false;                        // guarded by mu_
    int in_flight_ = 0;                            // guarded by mu_: answers sent, not yet acknowledged
    std::atomic<std::int64_t> answered_{0}, refused_{0}, items_{0};
};

}  // namespace durable::server
