// Correlation ids and audit records of client RPCs (see call_audit.hpp).
#include "server/call_audit.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace durable::server {
namespace {

std::string_view view(grpc::string_ref r) { return std::string_view(r.data(), r.size()); }

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// A caller's id goes into logs and the audit log: printable, bounded.
bool usable(std::string_view s) {
    return !s.empty() && s.size() <= 128 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 127; });
}

const char* code_name(grpc::StatusCode c) {
    switch (c) {
        case grpc::StatusCode::OK: return "OK";
        case grpc::StatusCode::CANCELLED: return "CANCELLED";
        case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
        case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
        case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
        case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
        case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
        case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
        case grpc::StatusCode::INTERNAL: return "INTERNAL";
        case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
        default: return "ERROR";
    }
}

}  // namespace

std::optional<std::string> correlation_id_from(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
    // traceparent: version "-" trace-id (32 hex) "-" parent-id (16 hex) "-" flags.
    if (auto it = metadata.find("traceparent"); it != metadata.end()) {
        auto tp = view(it->second);
        if (tp.size() >= 55 && tp[2] == '-' && tp[35] == '-') {
            auto trace_id = tp.substr(3, 32);
            if (is_hex(trace_id) && trace_id != std::string(32, '0')) return std::string(trace_id);
        }
    }
    if (auto it = metadata.find("x-correlation-id"); it != metadata.end()) {
        if (usable(view(it->second))) return std::string(view(it->second));
    }
    return std::nullopt;
}

CallAudit::CallAudit(grpc::ServerContextBase* ctx, const Client& client, std::string actor_prefix, std::string method)
    : client_(client),
      actor_(std::move(actor_prefix) + " " + ctx->peer()),
      method_(std::move(method)),
      started_(std::chrono::steady_clock::now()) {
    auto cid = correlation_id_from(ctx->client_metadata());
    correlation_id_ = cid ? *cid : new_instance_id();
    ctx->AddInitialMetadata("x-correlation-id", correlation_id_);
}

grpc::Status CallAudit::finish(grpc::Status status) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
    nlohmann::json detail = {{"cid", correlation_id_},
                             {"items", items_},
                             {"ms", static_cast<double>(us.count()) / 1000.0},
                             {"outcome", code_name(status.error_code())}};
    if (!status.ok()) detail["error"] = status.error_message();
    AuditRecord r;
    r.actor = actor_;
    r.action = method_;
    r.instance_id = instance_id_;
    r.detail = detail.dump();
    client_.audit(std::move(r));
    return status;
}

}  // namespace durable::server
