// server/sidecar_service.hpp — the TaskHubSidecarService implementation behind SidecarServer.
//
// Client RPCs (client_rpcs.cpp) map onto durable::Client; each is audited (call_audit.hpp)
// and answers with the status codes listed in sidecar_server.hpp. A call arriving while the
// server stops gets UNAVAILABLE; a waiting call ends with UNAVAILABLE when it notices.
#pragma once

#include <atomic>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <durable/durable.hpp>

#include "orchestrator_service.grpc.pb.h"
#include "server/pending_call.hpp"
#include "server/sidecar_server.hpp"
#include "server/work_items.hpp"

namespace durable::server {

// An RPC's failure with the status a client can act on.
struct RpcError {
    grpc::StatusCode code;
    std::string message;
};

// The worker RPCs, StartInstance and WaitForInstanceCompletion (the calls of every
// orchestration) run on gRPC's callback API: no thread waits per stream, completion, start or
// wait; the other calls are synchronous (short reads, or a write that waits for its commit).
using SidecarServiceBase = ::TaskHubSidecarService::WithCallbackMethod_StartInstance<
    ::TaskHubSidecarService::WithCallbackMethod_WaitForInstanceCompletion<
    ::TaskHubSidecarService::WithCallbackMethod_GetWorkItems<
        ::TaskHubSidecarService::WithCallbackMethod_CompleteActivityTask<
            ::TaskHubSidecarService::WithCallbackMethod_CompleteOrchestratorTask<::TaskHubSidecarService::Service>>>>>;

class SidecarService final : public SidecarServiceBase {
public:
    SidecarService(Database db, Host& host, std::shared_ptr<const Registry> registry, ServerOptions options,
                   std::shared_ptr<WorkItemHub> hub);

    // From now on every call but the Complete* ones answers UNAVAILABLE; waiting calls and
    // work-item streams end (their items go back to the hub's queue).
    void begin_shutdown();
    bool stopping() const { return stopping_.load(); }

    grpc::Status Hello(grpc::ServerContext* ctx, const google::protobuf::Empty* req,
                       google::protobuf::Empty* resp) override;
    grpc::ServerUnaryReactor* StartInstance(grpc::CallbackServerContext* ctx, const ::CreateInstanceRequest* req,
                                            ::CreateInstanceResponse* resp) override;
    grpc::Status GetInstance(grpc::ServerContext* ctx, const ::GetInstanceRequest* req,
                             ::GetInstanceResponse* resp) override;
    grpc::Status WaitForInstanceStart(grpc::ServerContext* ctx, const ::GetInstanceRequest* req,
                                      ::GetInstanceResponse* resp) override;
    grpc::ServerUnaryReactor* WaitForInstanceCompletion(grpc::CallbackServerContext* ctx,
                                                        const ::GetInstanceRequest* req,
                                                        ::GetInstanceResponse* resp) override;
    grpc::Status RaiseEvent(grpc::ServerContext* ctx, const ::RaiseEventRequest* req,
                            ::RaiseEventResponse* resp) override;
    grpc::Status TerminateInstance(grpc::ServerContext* ctx, const ::TerminateRequest* req,
                                   ::TerminateResponse* resp) override;
    grpc::Status SuspendInstance(grpc::ServerContext* ctx, const ::SuspendRequest* req,
                                 ::SuspendResponse* resp) override;
    grpc::Status ResumeInstance(grpc::ServerContext* ctx, const ::ResumeRequest* req,
                                ::ResumeResponse* resp) override;
    grpc::Status QueryInstances(grpc::ServerContext* ctx, const ::QueryInstancesRequest* req,
                                ::QueryInstancesResponse* resp) override;
    grpc::Status PurgeInstances(grpc::ServerContext* ctx, const ::PurgeInstancesRequest* req,
                                ::PurgeInstancesResponse* resp) override;

    // Worker RPCs (worker_rpcs.cpp).
    grpc::ServerWriteReactor<::WorkItem>* GetWorkItems(grpc::CallbackServerContext* ctx,
                                                       const ::GetWorkItemsRequest* req) override;
    grpc::ServerUnaryReactor* CompleteActivityTask(grpc::CallbackServerContext* ctx, const ::ActivityResponse* resp,
                                                   ::CompleteTaskResponse* out) override;
    grpc::ServerUnaryReactor* CompleteOrchestratorTask(grpc::CallbackServerContext* ctx,
                                                       const ::OrchestratorResponse* resp,
                                                       ::CompleteTaskResponse* out) override;

    const ServerOptions& options() const { return options_; }
    const Client& audit_client() const { return plain_client_; }
    const std::shared_ptr<WorkItemHub>& hub() const { return hub_; }

private:
    // The client for orchestration `name`: the host's own (it starts the instance at once)
    // when the name is registered in C++, else a plain one (the instance waits for a claim).
    Client& client_for(const std::string& name);
    // The status a client can act on for a failed call's exception.
    static grpc::Status status_of(std::exception_ptr error);
    // Runs `body` as audited call `method`, turning exceptions into statuses.
    template <class Body>
    grpc::Status audited(grpc::ServerContext* ctx, const char* method, Body&& body);
    // Shared by the two waits: blocks until `done(state)` or the call is cancelled.
    grpc::Status wait_for(grpc::ServerContext* ctx, const char* method, const ::GetInstanceRequest* req,
                          ::GetInstanceResponse* resp, bool completion);

    Database db_;
    std::shared_ptr<const Registry> registry_;
    ServerOptions options_;
    Client host_client_;   // attached to the host
    Client plain_client_;  // not attached
    std::shared_ptr<WorkItemHub> hub_;
    std::atomic<bool> stopping_{false};
    // WaitForInstanceCompletion calls not answered yet: ended with UNAVAILABLE at shutdown.
    // Shared with the waits' callbacks, which may run after the service is gone.
    struct OpenWaits {
        std::mutex mu;
        std::unordered_map<const PendingCall*, std::weak_ptr<PendingCall>> calls;  // guarded by mu
    };
    std::shared_ptr<OpenWaits> waits_ = std::make_shared<OpenWaits>();
};

}  // namespace durable::server
