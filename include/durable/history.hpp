// durable/history.hpp — the events of an instance's history, as Client::history and
// Client::watch give them.
//
// Every event is JSON with its type under "t" and its time under "ts"; HistoryEntry reads the
// fields for you. Which fields each type carries:
//
//   ExecutionStarted           name (orchestration), input
//   TaskScheduled              task_id, name (activity), input
//   TaskCompleted              task_id, result
//   TaskFailed                 task_id, failure
//   TimerCreated               task_id, fire_at
//   TimerFired                 task_id
//   SubOrchestrationCreated    task_id, name (orchestration), target_instance, input
//   SubOrchestrationCompleted  task_id, result
//   SubOrchestrationFailed     task_id, failure (the child's error)
//   EventRaised                name (event), input (payload)
//   EventSent                  task_id, name (event), target_instance, input (payload)
//   ExecutionCompleted         final_status (Completed or Failed), result, failure
//   ContinuedAsNew             input (of the next execution)
//   ExecutionTerminated        reason
//   ExecutionSuspended         reason
//   ExecutionResumed           reason
//
// Accessors of fields an event does not carry give an empty value (nullopt, "", null JSON).
//
// Thread safety: a HistoryEntry is a value; const methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "durable/errors.hpp"
#include "durable/status.hpp"

namespace durable {

using Json = nlohmann::json;

enum class EventType {
    ExecutionStarted,
    TaskScheduled,
    TaskCompleted,
    TaskFailed,
    TimerCreated,
    TimerFired,
    SubOrchestrationCreated,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ContinuedAsNew,
    ExecutionTerminated,
    ExecutionSuspended,
    ExecutionResumed,
    PatchApplied,      // ctx.patched(id) was first reached: {"patch": id}
    ExecutionRewound,  // Client::rewind: {"reason", "from": first seq left out of replay}
    Unknown,  // a type this build does not know (written by a newer durable)
};

// The name stored in history ("TaskScheduled"); "Unknown" for EventType::Unknown.
std::string_view to_string(EventType t);
// The type named `name` (as to_string spells it); EventType::Unknown for any other name.
EventType event_type_from_string(std::string_view name);

// FailureDetails from the JSON of a failure in history or in InstanceState::error (fields
// type, message, details, task {kind, name, id, instance}, inner).
FailureDetails failure_from_json(const Json& error);
// The JSON form of `f` (as failure_from_json reads it).
Json failure_to_json(const FailureDetails& f);

struct HistoryEntry {
    std::int64_t seq = 0;  // position in the instance's history, from 0
    Json event;            // the event as recorded: {"t": type, "ts": ms, ...}

    EventType type() const;
    // When the event was recorded (the same on every replay).
    std::chrono::system_clock::time_point timestamp() const;
    std::int64_t timestamp_ms() const;
    // The task id the orchestrator's decision got (scheduling events and their results).
    std::optional<std::int64_t> task_id() const;
    // Orchestration, activity or event name, as the table above says; "" otherwise.
    std::string name() const;
    // Input of a start, task, sub-orchestration, continue-as-new; payload of an event.
    Json input() const;
    // Result of a completed task, sub-orchestration or execution.
    Json result() const;
    // Why a task, sub-orchestration or execution failed.
    std::optional<FailureDetails> failure() const;
    // The instance a sub-orchestration was created as, or an event was sent to.
    std::string target_instance() const;
    // When a timer fires.
    std::optional<std::chrono::system_clock::time_point> fire_at() const;
    // ExecutionCompleted: Completed or Failed.
    std::optional<Status> final_status() const;
    // ExecutionTerminated / Suspended / Resumed: the reason the client gave (null if none).
    Json reason() const;
};

}  // namespace durable
