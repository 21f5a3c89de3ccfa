// A C++ worker over the sidecar protocol (see protocol_worker.hpp).
#include "server/protocol_worker.hpp"

#include <google/protobuf/util/time_util.h>

#include "server/grpc_runtime.hpp"

namespace durable::server {

namespace {

std::int64_t ms_of(const google::protobuf::Timestamp& t) {
    return t.seconds() * 1000 + t.nanos() / 1'000'000;
}

}  // namespace

ReplayView ReplayView::of(const ::OrchestratorRequest& req) {
    ReplayView v;
    v.instance_id = req.instanceid();
    auto take = [&v](const ::HistoryEvent& h) {
        auto bump = [&v](int id) { v.next_id = std::max(v.next_id, id + 1); };
        switch (h.eventType_case()) {
            case ::HistoryEvent::kOrchestratorStarted: v.now_ms = ms_of(h.timestamp()); break;
            case ::HistoryEvent::kExecutionStarted:
                v.name = h.executionstarted().name();
                if (h.executionstarted().has_input()) v.input = h.executionstarted().input().value();
                break;
            case ::HistoryEvent::kTaskScheduled:
                v.scheduled[h.eventid()] = h.taskscheduled().name();
                bump(h.eventid());
                break;
            case ::HistoryEvent::kSubOrchestrationInstanceCreated:
                v.scheduled[h.eventid()] = h.suborchestrationinstancecreated().name();
                bump(h.eventid());
                break;
            case ::HistoryEvent::kTimerCreated:
                v.timers_created.push_back(h.eventid());
                bump(h.eventid());
                break;
            case ::HistoryEvent::kEventSent: bump(h.eventid()); break;
            case ::HistoryEvent::kTaskCompleted:
                v.results[h.taskcompleted().taskscheduledid()] =
                    h.taskcompleted().has_result() ? h.taskcompleted().result().value() : "";
                break;
            case ::HistoryEvent::kTaskFailed:
                v.failures[h.taskfailed().taskscheduledid()] = h.taskfailed().failuredetails();
                break;
            case ::HistoryEvent::kSubOrchestrationInstanceCompleted: {
                const auto& x = h.suborchestrationinstancecompleted();
                v.results[x.taskscheduledid()] = x.has_result() ? x.result().value() : "";
                break;
            }
            case ::HistoryEvent::kSubOrchestrationInstanceFailed:
                v.failures[h.suborchestrationinstancefailed().taskscheduledid()] =
                    h.suborchestrationinstancefailed().failuredetails();
                break;
            case ::HistoryEvent::kTimerFired: v.timers_fired.push_back(h.timerfired().timerid()); break;
            case ::HistoryEvent::kEventRaised:
                v.events.emplace_back(h.eventraised().name(),
                                      h.eventraised().has_input() ? h.eventraised().input().value() : "");
                break;
            default: break;
        }
    };
    for (const auto& h : req.pastevents()) take(h);
    for (const auto& h : req.newevents()) take(h);
    return v;
}

void Decision::schedule(int id, const std::string& activity, const std::string& input_json) {
    ::OrchestratorAction a;
    a.set_id(id);
    a.mutable_scheduletask()->set_name(activity);
    if (!input_json.empty()) a.mutable_scheduletask()->mutable_input()->set_value(input_json);
    actions.push_back(std::move(a));
}

void Decision::sub_orchestration(int id, const std::string& name, const std::string& instance_id,
                                 const std::string& input) {
    ::OrchestratorAction a;
    a.set_id(id);
    auto* x = a.mutable_createsuborchestration();
    x->set_name(name);
    x->set_instanceid(instance_id);
    if (!input.empty()) x->mutable_input()->set_value(input);
    actions.push_back(std::move(a));
}

void Decision::timer(int id, std::int64_t fire_at_ms) {
    ::OrchestratorAction a;
    a.set_id(id);
    *a.mutable_createtimer()->mutable_fireat() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(fire_at_ms);
    actions.push_back(std::move(a));
}

void Decision::complete(const std::string& result_json) {
    ::OrchestratorAction a;
    a.set_id(static_cast<int>(actions.size()) + 100000);
    auto* c = a.mutable_completeorchestration();
    c->set_orchestrationstatus(ORCHESTRATION_STATUS_COMPLETED);
    if (!result_json.empty()) c->mutable_result()->set_value(result_json);
    actions.push_back(std::move(a));
}

void Decision::fail(const std::string& type, const std::string& message) {
    ::OrchestratorAction a;
    a.set_id(static_cast<int>(actions.size()) + 100000);
    auto* c = a.mutable_completeorchestration();
    c->set_orchestrationstatus(ORCHESTRATION_STATUS_FAILED);
    c->mutable_failuredetails()->set_errortype(type);
    c->mutable_failuredetails()->set_errormessage(message);
    actions.push_back(std::move(a));
}

void Decision::continue_as_new(const std::string& input_json) {
    ::OrchestratorAction a;
    a.set_id(static_cast<int>(actions.size()) + 100000);
    auto* c = a.mutable_completeorchestration();
    c->set_orchestrationstatus(ORCHESTRATION_STATUS_CONTINUED_AS_NEW);
    if (!input_json.empty()) c->mutable_result()->set_value(input_json);
    actions.push_back(std::move(a));
}

class ProtocolWorker::Reader final : public grpc::ClientReadReactor<::WorkItem> {
public:
    explicit Reader(ProtocolWorker& worker) : worker_(worker) {
        worker_.stub_->async()->GetWorkItems(worker_.stream_ctx_.get(), &request_, this);
        StartRead(&item_);
        StartCall();
    }

    void OnReadDone(bool ok) override {
        if (!ok) return;  // the stream ended: OnDone follows
        worker_.items_.fetch_add(1);
        if (worker_.threads_ == 0) {
            worker_.handle(item_);  // here: no hand-off per item
        } else {
            std::lock_guard lock(worker_.mu_);
            worker_.queue_.push_back(item_);
            worker_.cv_.notify_one();
        }
        item_.Clear();
        StartRead(&item_);
    }

    void OnDone(const grpc::Status&) override {
        std::lock_guard lock(mu_);
        done_ = true;
        cv_.notify_all();
    }

    void wait() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_; });
    }

private:
    ProtocolWorker& worker_;
    ::GetWorkItemsRequest request_;
    ::WorkItem item_;  // being read; used by one reaction at a time
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;  // guarded by mu_
};

ProtocolWorker::ProtocolWorker(std::string target, int threads) : target_(std::move(target)), threads_(threads) {}

ProtocolWorker::~ProtocolWorker() { stop(); }

void ProtocolWorker::start() {
    tune_grpc_runtime();
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    stub_ = ::TaskHubSidecarService::NewStub(channel_);
    stream_ctx_ = std::make_unique<grpc::ClientContext>();
    reader_ = std::make_unique<Reader>(*this);
    for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { work_loop(); });
}

void ProtocolWorker::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ || !stream_ctx_) return;
        stopping_ = true;
    }
    stream_ctx_->TryCancel();
    cv_.notify_all();
    if (reader_) reader_->wait();
    for (auto& t : workers_) t.join();
    workers_.clear();
    // The answers still on their way end within their deadline.
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
}

std::vector<::OrchestratorRequest> ProtocolWorker::requests() const {
    std::lock_guard lock(mu_);
    return requests_;
}

grpc::Status ProtocolWorker::last_refusal() const {
    std::lock_guard lock(mu_);
    return last_refusal_;
}

void ProtocolWorker::work_loop() {
    for (;;) {
        ::WorkItem w;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            w = std::move(queue_.front());
            queue_.pop_front();
        }
        handle(w);
    }
}

// One answer on its way: alive until its callback ran.
struct ProtocolWorker::Answer {
    grpc::ClientContext ctx;
    ::OrchestratorResponse orchestrator;
    ::ActivityResponse activity;
    ::CompleteTaskResponse out;
};

void ProtocolWorker::answered(Answer* a, const grpc::Status& status) {
    delete a;
    if (status.ok()) {
        answered_.fetch_add(1);
    } else {
        refused_.fetch_add(1);
        std::lock_guard lock(mu_);
        last_refusal_ = status;
    }
    std::lock_guard lock(mu_);
    if (--in_flight_ == 0) cv_.notify_all();
}

void ProtocolWorker::handle(const ::WorkItem& w) {
    if (!w.has_orchestratorrequest() && !w.has_activityrequest()) return;
    auto* a = new Answer;
    a->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    {
        std::lock_guard lock(mu_);
        ++in_flight_;
    }
    auto done = [this, a](grpc::Status status) { answered(a, status); };
    if (w.has_orchestratorrequest()) {
        const auto& req = w.orchestratorrequest();
        if (keep_requests) {
            std::lock_guard lock(mu_);
            requests_.push_back(req);
        }
        auto view = ReplayView::of(req);
        auto& resp = a->orchestrator;
        resp.set_instanceid(req.instanceid());
        auto it = deciders_.find(view.name);
        Decision d;
        if (it == deciders_.end()) {
            d.fail("UnknownOrchestration", "no orchestrator named '" + view.name + "' in this worker");
        } else {
            try {
                d = it->second(view);
            } catch (const std::exception& e) {
                d = Decision{};
                d.fail("OrchestratorError", e.what());
            }
        }
        for (auto& action : d.actions) *resp.add_actions() = std::move(action);
        if (d.custom_status) resp.mutable_customstatus()->set_value(*d.custom_status);
        // Asynchronous: the answer returns once it is durable; this thread takes the next item.
        stub_->async()->CompleteOrchestratorTask(&a->ctx, &resp, &a->out, std::move(done));
    } else {
        const auto& req = w.activityrequest();
        auto& resp = a->activity;
        resp.set_instanceid(req.orchestrationinstance().instanceid());
        resp.set_taskid(req.taskid());
        auto it = activities_.find(req.name());
        try {
            if (it == activities_.end()) throw std::runtime_error("no activity named '" + req.name() + "' in this worker");
            auto result = it->second(req);
            if (!result.empty()) resp.mutable_result()->set_value(result);
        } catch (const std::exception& e) {
            resp.mutable_failuredetails()->set_errortype("ActivityError");
            resp.mutable_failuredetails()->set_errormessage(e.what());
        }
        stub_->async()->CompleteActivityTask(&a->ctx, &resp, &a->out, std::move(done));
    }
}

}  // namespace durable::server
