// server/protocol_state.hpp — instance state and statuses in the protocol's form.
//
// Inputs, outputs and results travel as JSON text in StringValues; an absent or empty one is
// null. A custom status travels as the raw string an SDK set (a JSON string is sent as its
// contents, anything else as its JSON text).
#pragma once

#include <cstdint>
#include <google/protobuf/timestamp.pb.h>
#include <optional>
#include <string>

#include <durable/client.hpp>

#include "orchestrator_service.pb.h"

namespace durable::server {

::OrchestrationStatus to_proto(Status s);
// nullopt for statuses this runtime never reports (CANCELED, CONTINUED_AS_NEW).
std::optional<Status> from_proto(::OrchestrationStatus s);

void set_timestamp(google::protobuf::Timestamp* t, std::int64_t ms);
std::int64_t to_ms(const google::protobuf::Timestamp& t);

// The instance's state; inputs and outputs only with `with_io`.
void fill_state(const InstanceState& s, bool with_io, ::OrchestrationState* out);
// The text of a custom status as an SDK reads it back.
std::string custom_status_text(const Json& custom_status);

}  // namespace durable::server
