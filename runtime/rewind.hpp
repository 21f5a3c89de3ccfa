// runtime/rewind.hpp — which history events a rewind leaves out of replay.
//
// Client::rewind puts a Failed instance back to work from its failure point. History is
// never rewritten: an ExecutionRewound marker is appended, and replay leaves out the events
// from the failure that failed the instance up to the marker (the failed activity's or
// sub-orchestration's result, the failed ExecutionCompleted and whatever came between).
// Everything before stays, so what succeeded is not run again; the failed task, pending in
// replay once more, is scheduled again. Both the client (planning a rewind) and replay use
// these functions, so they agree on the range.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <vector>

namespace durable::detail {

// The first index of [begin, end) a rewind marker placed at `end` leaves out: the failure
// event (TaskFailed / SubOrchestrationFailed) of the task whose failure failed the instance,
// as its failed ExecutionCompleted names it; else that ExecutionCompleted itself (the code
// failed on its own). `end` when the range holds no failed ExecutionCompleted.
std::size_t rewind_start(const std::vector<nlohmann::json>& history, std::size_t begin, std::size_t end);

// For each event of `history`, whether replay leaves it out (a rewound range before an
// ExecutionRewound marker).
std::vector<bool> rewound_events(const std::vector<nlohmann::json>& history);

}  // namespace durable::detail
