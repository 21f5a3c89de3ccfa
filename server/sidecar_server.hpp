// server/sidecar_server.hpp — `durable serve`'s gRPC face: the Durable Task sidecar protocol
// (service TaskHubSidecarService, server/orchestrator_service.proto) on a durable database.
//
// The server sits beside a Host of the same process and maps each client RPC onto the same
// durable::Client operation the C++ API offers, with the same guarantee: a write is durable
// when the RPC returns. Every client RPC is audited (method, correlation id, instance, item
// count, duration, outcome); the correlation id comes from the request's `traceparent` or
// `x-correlation-id` metadata, or is made up, and is echoed back as `x-correlation-id`.
//
// Status codes: NOT_FOUND unknown instance, ALREADY_EXISTS a start with an id in use,
// INVALID_ARGUMENT malformed input or JSON, FAILED_PRECONDITION an operation the instance's
// state forbids (purging a running instance, an event to a finished one), RESOURCE_EXHAUSTED
// a payload over the limit, UNAVAILABLE while stopping. GetInstance of an unknown id answers
// exists = false (the SDKs rely on it), not NOT_FOUND.
//
// Worker RPCs: GetWorkItems streams the hub's work items (work_items.hpp) to a worker, at
// most max_outstanding_per_stream unanswered at once; CompleteActivityTask and
// CompleteOrchestratorTask complete them, and answer FAILED_PRECONDITION for an item that is
// not outstanding (fenced: completed already, withdrawn, or never sent by this process).
//
// Shutdown order: stop accepting calls (new ones get UNAVAILABLE), end waiting calls and
// work-item streams with UNAVAILABLE (their items go back to the queue), let the calls in
// flight finish (completions are still taken during the grace period), stop gRPC, refuse
// what is left in the hub. The host is stopped afterwards by its owner.
//
// Thread safety: start() and shutdown() from one thread; the RPCs run on gRPC's threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <durable/durable.hpp>

namespace durable::server {

struct ServerOptions {
    // host:port to listen on; port 0 picks a free one (see SidecarServer::port()).
    std::string listen = "127.0.0.1:4001";
    // Largest input, event payload or output accepted, as for the Host (max_payload_bytes).
    std::size_t max_payload_bytes = 256 * 1024;
    // gRPC's own receive limit; the SDKs send without limit, so ours is generous and the
    // payload limit above is what a caller is told about.
    int max_receive_message_bytes = 64 * 1024 * 1024;
    // HTTP/2 keep-alive pings, so a dead peer is noticed even on an idle connection.
    std::chrono::milliseconds keepalive_time{20'000};
    std::chrono::milliseconds keepalive_timeout{10'000};
    // How often a waiting RPC (WaitForInstance*) looks whether it was cancelled or the server
    // is stopping; the wait itself is woken by the commit.
    std::chrono::milliseconds wait_slice{200};
    // The audit log's actor prefix (the peer's address is appended); e.g. "serve@HOSTID".
    std::string actor = "serve";
    // Work items sent to one worker stream and not yet answered, at most.
    std::size_t max_outstanding_per_stream = 64;
};

class WorkItemHub;

class SidecarServer {
public:
    // `host` runs the C++ orchestrations in `registry`; both must outlive the server. `hub`
    // carries the work items for connected workers; it is the one whose remote_activity()
    // is the registry's default activity (null: the server makes its own, and only work
    // submitted to it directly reaches the workers).
    SidecarServer(Database db, Host& host, std::shared_ptr<const Registry> registry, ServerOptions options = {},
                  std::shared_ptr<WorkItemHub> hub = nullptr);
    ~SidecarServer();  // shuts down with a short grace period if still running
    SidecarServer(const SidecarServer&) = delete;
    SidecarServer& operator=(const SidecarServer&) = delete;

    // Binds and starts serving. Throws durable::Error when the address cannot be bound.
    void start();
    // The bound port (after start()).
    int port() const;
    std::shared_ptr<WorkItemHub> hub() const;
    // Stops as described above; idempotent.
    void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(5));

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace durable::server
