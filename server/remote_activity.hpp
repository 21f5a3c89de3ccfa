// server/remote_activity.hpp — the activity a `durable serve` host runs for every name it has
// no C++ code for: the call becomes an ActivityRequest work item for a connected worker
// stream, and the worker's answer its result (or its failure, relayed unchanged: TaskFailed
// with the worker's errorType, errorMessage and stack trace; never retried here).
//
// The call occupies one of the host's activity threads while the worker runs it. It waits
// for a stream as long as it takes; when the host stops (the call's cancellation), the item
// is withdrawn and the activity runs again after a restart or takeover, as any in-flight
// activity does.
#pragma once

#include <memory>

#include <durable/registry.hpp>

#include "server/work_items.hpp"

namespace durable::server {

ActivityFn remote_activity(std::shared_ptr<WorkItemHub> hub);

}  // namespace durable::server
