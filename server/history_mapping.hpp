// server/history_mapping.hpp — our history events <-> the protocol's HistoryEvent, and a
// worker's OrchestratorActions -> our scheduling events. The one place where the two
// vocabularies meet; tests/server/test_history_mapping.cpp holds its table.
//
// Our events are the JSON objects of an instance's history as Client::history returns them:
// {"t": type, "ts": ms, ...}. Task ids are the protocol's event ids: a scheduling event's
// "id" (TaskScheduled, TimerCreated, SubOrchestrationCreated, EventSent) is its eventId; a
// completion's "id" is its taskScheduledId (timerId for TimerFired); every other event has
// eventId -1. Payloads (inputs, results) are JSON values with us and JSON text with the
// protocol; null travels as an absent StringValue. Failures {type, message, details} are
// TaskFailureDetails {errorType, errorMessage, stackTrace}. A terminate / suspend / resume
// reason (a string with us) is the JSON text of that string in the protocol, which is what
// the SDKs hand back as a terminated instance's output.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "orchestrator_service.pb.h"

namespace durable::server {

using Json = nlohmann::json;

// A protocol message that cannot become one of our events (unknown kind, malformed JSON
// payload, missing field); the message says which and why.
class MappingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Our event as the protocol's. Throws MappingError for an event type we never write.
::HistoryEvent to_protocol(const Json& event);

// The protocol's event as ours (the inverse of to_protocol for every kind it writes).
// Throws MappingError for kinds we do not keep (OrchestratorStarted/Completed, generic,
// history state) and for malformed payloads.
Json from_protocol(const ::HistoryEvent& event);

// The scheduling event that records a worker's action `a` at `now_ms` (TaskScheduled,
// TimerCreated, SubOrchestrationCreated, EventSent), carrying the action's id. Throws
// MappingError for CompleteOrchestration (see completion_of), TerminateOrchestration (not
// served) and malformed actions.
Json scheduling_event(const ::OrchestratorAction& a, std::int64_t now_ms);

// How a worker ended an execution (CompleteOrchestrationAction), in our terms.
struct Completion {
    enum class Kind { Completed, Failed, Terminated, ContinuedAsNew };
    Kind kind = Kind::Completed;
    Json result;                      // Completed: the output; ContinuedAsNew: the next input
    Json error;                       // Failed: {type, message, details}
    std::string terminate_reason;     // Terminated
    std::vector<Json> carryover;      // ContinuedAsNew: events for the next generation
};
Completion completion_of(const ::CompleteOrchestrationAction& a);

// JSON text <-> JSON value, as payloads travel: "" and absent are null.
Json payload_from(const google::protobuf::StringValue& v, bool present, const char* what);
std::optional<std::string> payload_text(const Json& value);

}  // namespace durable::server
