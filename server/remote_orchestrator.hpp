// server/remote_orchestrator.hpp — the orchestrator a `durable serve` host runs for every name
// it has no C++ code for: each step becomes an OrchestratorRequest work item for a connected
// worker stream (the execution's past events and new events in the protocol's HistoryEvent
// form, each batch opened by an OrchestratorStarted event that sets the worker's clock), and
// the worker's OrchestratorResponse becomes the step's decisions (history_mapping.hpp).
//
// An action the protocol lets a worker send but this server cannot record (an unknown kind, a
// malformed payload, a terminate of another instance) fails the instance with InvalidAction
// and the reason, instead of leaving it waiting for an answer that cannot come.
#pragma once

#include <memory>

#include <durable/remote_orchestrator.hpp>

#include "server/work_items.hpp"

namespace durable::server {

std::shared_ptr<RemoteOrchestrator> remote_orchestrator(std::shared_ptr<WorkItemHub> hub);

// The request a worker is sent for `step`.
::OrchestratorRequest orchestrator_request(const RemoteStep& step);
// The decisions of a worker's answer (never throws: what cannot be read fails the instance).
RemoteDecisions decisions_of(const ::OrchestratorResponse& resp, std::int64_t now_ms);

}  // namespace durable::server
