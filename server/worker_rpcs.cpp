// The worker RPCs of TaskHubSidecarService: a stream of work items per worker, and the
// answers that complete them (see work_items.hpp for backpressure, give-back and fencing).
//
// All three run on gRPC's callback API. A stream is written by whichever thread hands it
// items (the hub's wake): the items ready at that moment go out back to back, flushed once
// (buffer hints on all but the last), and the next batch starts when the last write is done.
// A CompleteOrchestratorTask is answered by the commit that records it (OK means durable),
// from the thread that learns the outcome.
#include <fmt/format.h>

#include "server/call_audit.hpp"
#include "server/sidecar_service.hpp"

namespace durable::server {
namespace {

// Items written back to back before the stream is flushed; bounded so a large backlog is not
// held in gRPC's buffers at once.
constexpr std::size_t kBatch = 32;

class WorkItemStream final : public grpc::ServerWriteReactor<::WorkItem> {
public:
    static WorkItemStream* start(SidecarService& service, grpc::CallbackServerContext* ctx) {
        auto* s = new WorkItemStream(service, ctx);
        s->self_ = std::shared_ptr<WorkItemStream>(s);
        s->open(ctx);
        return s;
    }

    void OnWriteDone(bool ok) override {
        bool finish_now = false;
        {
            std::lock_guard lock(mu_);
            writing_ = false;
            current_.reset();
            finish_now = finishing_ && !finish_sent_;
            if (finish_now) finish_sent_ = true;
        }
        if (finish_now) {
            Finish(final_);
        } else if (!ok) {
            end(grpc::Status(grpc::StatusCode::CANCELLED, "the worker's stream broke"));
        } else {
            pump();
        }
    }

    void OnCancel() override { end(grpc::Status(grpc::StatusCode::CANCELLED, "the worker went away")); }

    void OnDone() override {
        auto keep = std::move(self_);  // deletes this on return
    }

private:
    WorkItemStream(SidecarService& service, grpc::CallbackServerContext* ctx)
        : service_(service), audit_(ctx, service.audit_client(), service.options().actor, "GetWorkItems") {}

    void open(grpc::CallbackServerContext* ctx) {
        std::weak_ptr<WorkItemStream> weak = self_;
        auto stream = service_.stopping() ? nullptr : service_.hub()->open_stream(ctx->peer(), [weak] {
            if (auto s = weak.lock()) s->pump();
        });
        if (!stream) {
            end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
            return;
        }
        {
            std::lock_guard lock(mu_);
            stream_ = std::move(stream);
        }
        // The headers go out at once, so the worker knows it is connected before any item.
        StartSendInitialMetadata();
        pump();  // what was assigned while the stream opened
    }

    // Sends the next ready item if no write is in flight; ends the call once the stream ended.
    // gRPC may run a reaction inline from StartWrite or Finish: neither is called under mu_.
    void pump() {
        bool ended = false;
        const ::WorkItem* to_write = nullptr;
        grpc::WriteOptions wo;
        {
            std::lock_guard lock(mu_);
            if (!stream_ || writing_ || finishing_) return;
            if (next_ >= batch_.size()) {
                batch_ = service_.hub()->take(stream_, kBatch);
                next_ = 0;
            }
            if (next_ < batch_.size()) {
                current_ = std::move(batch_[next_++]);
                // Back to back with the rest of the batch: flushed with its last item.
                if (next_ < batch_.size()) wo.set_buffer_hint();
                writing_ = true;
                to_write = current_.get();
                ++sent_;
            } else {
                ended = service_.hub()->ended(stream_);
            }
        }
        if (ended) {
            end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping; reconnect to another"));
        } else if (to_write) {
            StartWrite(to_write, wo);  // current_ keeps it alive until OnWriteDone
        }
    }

    // Ends the call once: the stream's unanswered items go to another stream now, the audit
    // record is written, and the status is sent when no write is in flight (else after it).
    void end(const grpc::Status& status) {
        std::shared_ptr<WorkItemHub::Stream> stream;
        bool finish_now = false;
        {
            std::lock_guard lock(mu_);
            if (finishing_) return;
            finishing_ = true;
            stream = stream_;
            audit_.items(sent_);
            final_ = audit_.finish(status);
            finish_now = !writing_;
            if (finish_now) finish_sent_ = true;
        }
        if (stream) service_.hub()->close_stream(stream);
        if (finish_now) Finish(final_);
    }

    SidecarService& service_;
    CallAudit audit_;                       // used under mu_
    std::shared_ptr<WorkItemStream> self_;  // gRPC's reference, dropped in OnDone
    std::mutex mu_;
    std::shared_ptr<WorkItemHub::Stream> stream_;           // guarded by mu_
    std::vector<std::shared_ptr<const ::WorkItem>> batch_;  // guarded by mu_: taken; from next_ on not yet written
    std::size_t next_ = 0;                                  // guarded by mu_
    std::shared_ptr<const ::WorkItem> current_;             // guarded by mu_: being written
    std::int64_t sent_ = 0;                                 // guarded by mu_
    grpc::Status final_;                                    // guarded by mu_; read once finish_sent_
    bool writing_ = false, finishing_ = false, finish_sent_ = false;  // guarded by mu_
};

}  // namespace

grpc::ServerWriteReactor<::WorkItem>* SidecarService::GetWorkItems(grpc::CallbackServerContext* ctx,
                                                                   const ::GetWorkItemsRequest*) {
    auto* s = WorkItemStream::start(*this, ctx);
    return s;
}

grpc::ServerUnaryReactor* SidecarService::CompleteActivityTask(grpc::CallbackServerContext* ctx,
                                                               const ::ActivityResponse* resp,
                                                               ::CompleteTaskResponse*) {
    auto* reactor = ctx->DefaultReactor();
    if (resp->instanceid().empty()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty"));
        return reactor;
    }
    WorkResult r;
    r.kind = WorkResult::Kind::Activity;
    r.activity = *resp;
    if (!hub_->complete(activity_key(resp->instanceid(), resp->taskid()), std::move(r))) {
        reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                     fmt::format("no work item is out for activity task {} of instance '{}' (answered "
                                                 "already, withdrawn because the instance moved or stopped, or sent by "
                                                 "another server); this completion changes nothing",
                                                 resp->taskid(), resp->instanceid())));
        return reactor;
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
}

namespace {

// Ends a CompleteOrchestratorTask call with the commit's outcome; if the host drops the answer
// without saying (it stopped working on the instance), the call is refused when it is let go.
struct AnswerOutcome {
    AnswerOutcome(std::shared_ptr<PendingCall> c, std::string id) : call(std::move(c)), instance_id(std::move(id)) {}
    AnswerOutcome(const AnswerOutcome&) = delete;
    AnswerOutcome& operator=(const AnswerOutcome&) = delete;
    std::shared_ptr<PendingCall> call;
    std::string instance_id;
    ~AnswerOutcome() {
        call->finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  fmt::format("the answer for instance '{}' was dropped: the host stopped working on it",
                                              instance_id)));
    }
};

}  // namespace

grpc::ServerUnaryReactor* SidecarService::CompleteOrchestratorTask(grpc::CallbackServerContext* ctx,
                                                                   const ::OrchestratorResponse* resp,
                                                                   ::CompleteTaskResponse*) {
    auto call = PendingCall::start();
    if (resp->instanceid().empty()) {
        call->finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty"));
        return call->reactor();
    }
    auto outcome = std::make_shared<AnswerOutcome>(call, resp->instanceid());
    WorkResult r;
    r.kind = WorkResult::Kind::Orchestrator;
    r.orchestrator = *resp;
    // The answer is committed (or refused) before the call returns: OK means durable.
    r.applied = [outcome](bool ok, const std::string& why) {
        outcome->call->finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why));
    };
    if (!hub_->complete(orchestrator_key(resp->instanceid()), std::move(r), ctx->peer())) {
        call->finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  fmt::format("no orchestrator work item for instance '{}' is out on this worker's "
                                              "stream (answered already, withdrawn because the instance moved to "
                                              "another host or finished, given back because the stream ended, or "
                                              "sent by another server); this completion changes nothing",
                                              resp->instanceid())));
    }
    return call->reactor();
}

}  // namespace durable::server
