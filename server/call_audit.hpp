// server/call_audit.hpp — one audit record per client RPC, and the call's correlation id.
//
// The correlation id is the trace id of the request's W3C `traceparent` metadata, else its
// `x-correlation-id`, else a new id; it is echoed back as `x-correlation-id` in the initial
// metadata and recorded with the method, instance id, item count, duration, outcome and
// error text. Records ride the next group commit (the RPC does not wait for them).
#pragma once

#include <chrono>
#include <cstdint>
#include <grpcpp/grpcpp.h>
#include <optional>
#include <string>

#include <durable/client.hpp>

namespace durable::server {

// The correlation id a call carries in `metadata` (traceparent's trace id, else
// x-correlation-id), or nullopt when it carries none that is usable.
std::optional<std::string> correlation_id_from(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

class CallAudit {
public:
    CallAudit(grpc::ServerContextBase* ctx, const Client& client, std::string actor_prefix, std::string method);
    const std::string& correlation_id() const { return correlation_id_; }
    void instance(std::string id) { instance_id_ = std::move(id); }
    void items(std::int64_t n) { items_ = n; }
    // Writes the record for the call's outcome and returns `status` unchanged.
    grpc::Status finish(grpc::Status status);

private:
    const Client& client_;
    std::string actor_, method_, correlation_id_;
    std::optional<std::string> instance_id_;
    std::int64_t items_ = 0;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace durable::server
