// The worker RPCs of TaskHubSidecarService: a stream of work items per worker, and the
// answers that complete them (see work_items.hpp for backpressure, give-back and fencing).
#include <fmt/format.h>

#include "server/call_audit.hpp"
#include "server/sidecar_service.hpp"

namespace durable::server {

grpc::Status SidecarService::GetWorkItems(grpc::ServerContext* ctx, const ::GetWorkItemsRequest*,
                                          grpc::ServerWriter<::WorkItem>* writer) {
    CallAudit audit(ctx, plain_client_, options_.actor, "GetWorkItems");
    if (stopping()) return audit.finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    auto stream = hub_->open_stream();
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

grpc::Status SidecarService::CompleteOrchestratorTask(grpc::ServerContext*, const ::OrchestratorResponse* resp,
                                                      ::CompleteTaskResponse*) {
    if (resp->instanceid().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty");
    WorkResult r;
    r.kind = WorkResult::Kind::Orchestrator;
    r.orchestrator = *resp;
    if (!hub_->complete(orchestrator_key(resp->instanceid()), std::move(r))) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            fmt::format("no orchestrator work item is out for instance '{}' (answered already, "
                                        "withdrawn because the instance moved, or sent by another server); this "
                                        "completion changes nothing",
                                        resp->instanceid()));
    }
    return grpc::Status::OK;
}

}  // namespace durable::server
