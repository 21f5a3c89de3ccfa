// The worker RPCs of TaskHubSidecarService: a stream of work items per worker, and the
// answers that complete them (see work_items.hpp for backpressure, give-back and fencing).
#include <fmt/format.h>
#include <future>

#include "server/call_audit.hpp"
#include "server/sidecar_service.hpp"

namespace durable::server {

grpc::Status SidecarService::GetWorkItems(grpc::ServerContext* ctx, const ::GetWorkItemsRequest*,
                                          grpc::ServerWriter<::WorkItem>* writer) {
    CallAudit audit(ctx, plain_client_, options_.actor, "GetWorkItems");
    if (stopping()) return audit.finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    auto stream = hub_->open_stream(ctx->peer());
    if (!stream) return audit.finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    // The headers go out at once, so the worker knows it is connected before any item.
    writer->SendInitialMetadata();
    std::int64_t sent = 0;
    grpc::Status status;
    for (;;) {
        if (ctx->IsCancelled()) {
            status = grpc::Status(grpc::StatusCode::CANCELLED, "the worker went away");
            break;
        }
        // Woken by an item; the slice bounds how long a cancelled or stopping stream lingers.
        auto item = hub_->next(stream, std::chrono::steady_clock::now() + options_.wait_slice);
        if (!item) {
            if (hub_->ended(stream) || stopping()) {
                status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping; reconnect to another");
                break;
            }
            continue;
        }
        if (!writer->Write(*item)) {
            status = grpc::Status(grpc::StatusCode::CANCELLED, "the worker's stream broke");
            break;
        }
        ++sent;
    }
    hub_->close_stream(stream);  // what it had and did not answer goes to another stream now
    audit.items(sent);
    return audit.finish(status);
}

grpc::Status SidecarService::CompleteActivityTask(grpc::ServerContext*, const ::ActivityResponse* resp,
                                                  ::CompleteTaskResponse*) {
    if (resp->instanceid().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty");
    WorkResult r;
    r.kind = WorkResult::Kind::Activity;
    r.activity = *resp;
    if (!hub_->complete(activity_key(resp->instanceid(), resp->taskid()), std::move(r))) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            fmt::format("no work item is out for activity task {} of instance '{}' (answered "
                                        "already, withdrawn because the instance moved or stopped, or sent by "
                                        "another server); this completion changes nothing",
                                        resp->taskid(), resp->instanceid()));
    }
    return grpc::Status::OK;
}

grpc::Status SidecarService::CompleteOrchestratorTask(grpc::ServerContext* ctx, const ::OrchestratorResponse* resp,
                                                      ::CompleteTaskResponse*) {
    if (resp->instanceid().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty");
    // The answer is committed (or refused) before the call returns: OK means durable.
    auto outcome = std::make_shared<std::promise<std::pair<bool, std::string>>>();
    auto committed = outcome->get_future();
    WorkResult r;
    r.kind = WorkResult::Kind::Orchestrator;
    r.orchestrator = *resp;
    r.applied = [outcome](bool ok, const std::string& why) { outcome->set_value({ok, why}); };
    if (!hub_->complete(orchestrator_key(resp->instanceid()), std::move(r), ctx->peer())) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            fmt::format("no orchestrator work item for instance '{}' is out on this worker's stream "
                                        "(answered already, withdrawn because the instance moved to another host or "
                                        "finished, given back because the stream ended, or sent by another server); "
                                        "this completion changes nothing",
                                        resp->instanceid()));
    }
    outcome.reset();  // the runtime holds the only setter now: a dropped answer breaks the promise
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (committed.wait_for(options_.wait_slice) != std::future_status::ready) {
        if (ctx->IsCancelled() || std::chrono::steady_clock::now() > deadline) {
            return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                fmt::format("the answer for instance '{}' was taken but not yet recorded; if it is "
                                            "lost, the step is sent again",
                                            resp->instanceid()));
        }
    }
    try {
        auto [ok, why] = committed.get();
        if (!ok) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
    } catch (const std::future_error&) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            fmt::format("the answer for instance '{}' was dropped: the host stopped working on it",
                                        resp->instanceid()));
    }
    return grpc::Status::OK;
}

}  // namespace durable::server
