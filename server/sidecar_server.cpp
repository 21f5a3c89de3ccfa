// SidecarServer: gRPC's server around SidecarService (see sidecar_server.hpp).
#include "server/sidecar_server.hpp"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <mutex>

#include "server/grpc_runtime.hpp"
#include "server/sidecar_service.hpp"
#include "server/work_items.hpp"

namespace durable::server {

struct SidecarServer::Impl {
    ServerOptions options;
    std::shared_ptr<WorkItemHub> hub;
    SidecarService service;
    std::unique_ptr<grpc::Server> server;
    int port = 0;
    std::mutex mu;  // serializes start() and shutdown()

    Impl(Database db, Host& host, std::shared_ptr<const Registry> registry, ServerOptions o,
         std::shared_ptr<WorkItemHub> h)
        : options(o),
          hub(h ? std::move(h) : std::make_shared<WorkItemHub>(o.max_outstanding_per_stream)),
          service(std::move(db), host, std::move(registry), std::move(o), hub) {}
};

SidecarServer::SidecarServer(Database db, Host& host, std::shared_ptr<const Registry> registry, ServerOptions options,
                             std::shared_ptr<WorkItemHub> hub)
    : impl_(std::make_unique<Impl>(std::move(db), host, std::move(registry), std::move(options), std::move(hub))) {}

SidecarServer::~SidecarServer() { shutdown(std::chrono::seconds(1)); }

void SidecarServer::start() {
    std::lock_guard lock(impl_->mu);
    if (impl_->server) return;
    tune_grpc_runtime();
    const auto& o = impl_->options;
    grpc::ServerBuilder b;
    b.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &impl_->port);
    b.RegisterService(&impl_->service);
    b.SetMaxReceiveMessageSize(o.max_receive_message_bytes);
    b.SetMaxSendMessageSize(-1);
    // Keep-alive: ping an idle connection, drop it when the ping goes unanswered; accept the
    // clients' own pings (without data in flight too) so a pinging SDK is not cut off.
    // gRPC binds with SO_REUSEPORT by default: a second server on a port in use would share
    // it silently instead of failing.
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(o.keepalive_time.count()));
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(o.keepalive_timeout.count()));
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
    impl_->server = b.BuildAndStart();
    if (!impl_->server || impl_->port == 0) {
        impl_->server.reset();
        throw Error(fmt::format("cannot listen on '{}': the address is in use or not valid (host:port, e.g. "
                                "127.0.0.1:4001)",
                                o.listen));
    }
}

int SidecarServer::port() const { return impl_->port; }

std::shared_ptr<WorkItemHub> SidecarServer::hub() const { return impl_->hub; }

void SidecarServer::shutdown(std::chrono::milliseconds grace) {
    std::lock_guard lock(impl_->mu);
    if (!impl_->server) return;
    impl_->service.begin_shutdown();  // new calls: UNAVAILABLE; waits end at their next slice
    impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
    impl_->server->Wait();
    impl_->server.reset();
    impl_->hub->stop();  // what no worker answered in time is refused (its activity runs again later)
}

}  // namespace durable::server
