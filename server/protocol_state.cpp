// Instance state in the protocol's form (see protocol_state.hpp).
#include "server/protocol_state.hpp"

namespace durable::server {

::OrchestrationStatus to_proto(Status s) {
    switch (s) {
        case Status::Pending: return ORCHESTRATION_STATUS_PENDING;
        case Status::Running: return ORCHESTRATION_STATUS_RUNNING;
        case Status::Suspended: return ORCHESTRATION_STATUS_SUSPENDED;
        case Status::Completed: return ORCHESTRATION_STATUS_COMPLETED;
        case Status::Failed: return ORCHESTRATION_STATUS_FAILED;
        case Status::Terminated: return ORCHESTRATION_STATUS_TERMINATED;
    }
    return ORCHESTRATION_STATUS_RUNNING;
}

std::optional<Status> from_proto(::OrchestrationStatus s) {
    switch (s) {
        case ORCHESTRATION_STATUS_PENDING: return Status::Pending;
        case ORCHESTRATION_STATUS_RUNNING: return Status::Running;
        case ORCHESTRATION_STATUS_SUSPENDED: return Status::Suspended;
        case ORCHESTRATION_STATUS_COMPLETED: return Status::Completed;
        case ORCHESTRATION_STATUS_FAILED: return Status::Failed;
        case ORCHESTRATION_STATUS_TERMINATED: return Status::Terminated;
        default: return std::nullopt;
    }
}

void set_timestamp(google::protobuf::Timestamp* t, std::int64_t ms) {
    std::int64_t seconds = ms / 1000, rest = ms % 1000;
    if (rest < 0) {
        seconds -= 1;
        rest += 1000;
    }
    t->set_seconds(seconds);
    t->set_nanos(static_cast<std::int32_t>(rest * 1'000'000));
}

std::int64_t to_ms(const google::protobuf::Timestamp& t) { return t.seconds() * 1000 + t.nanos() / 1'000'000; }

std::string custom_status_text(const Json& custom_status) {
    return custom_status.is_string() ? custom_status.get<std::string>() : custom_status.dump();
}

void fill_state(const InstanceState& s, bool with_io, ::OrchestrationState* out) {
    out->set_instanceid(s.id);
    out->set_name(s.name);
    out->set_orchestrationstatus(to_proto(s.status));
    if (!s.version.empty()) out->mutable_version()->set_value(s.version);
    set_timestamp(out->mutable_createdtimestamp(), s.created_at_ms);
    set_timestamp(out->mutable_lastupdatedtimestamp(), s.updated_at_ms);
    if (!s.custom_status.is_null()) out->mutable_customstatus()->set_value(custom_status_text(s.custom_status));
    if (with_io) {
        if (!s.input.is_null()) out->mutable_input()->set_value(s.input.dump());
        if (!s.output.is_null()) out->mutable_output()->set_value(s.output.dump());
    }
    if (s.status == Status::Failed && s.error.is_object()) {
        auto* f = out->mutable_failuredetails();
        f->set_errortype(s.error.value("type", std::string("Error")));
        f->set_errormessage(s.error.value("message", std::string()));
        if (auto d = s.error.find("details"); d != s.error.end() && d->is_string()) {
            f->mutable_stacktrace()->set_value(d->get<std::string>());
        }
    }
}

}  // namespace durable::server
