// durable/errors.hpp — the exceptions of durable's public API.
//
// Every exception durable throws derives from durable::Error. Each message says what was
// wrong and what to do about it. Inside hot loops and the store, expected outcomes (a lost
// claim race, a lease conflict) are values, not exceptions.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace durable {

// Base of every durable exception.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// No instance with the given id exists (never scheduled, or purged).
class InstanceNotFound : public Error {
public:
    using Error::Error;
};

// No schedule with the given id exists (never created, or deleted).
class ScheduleNotFound : public Error {
public:
    using Error::Error;
};

// Scheduling a caller-chosen id that exists already, with IfExists::Fail (or
// IfExists::Restart while the existing instance still runs).
class InstanceExists : public Error {
public:
    using Error::Error;
};


// The orchestrator's code asked for something its recorded history does not hold.
class NonDeterminism : public Error {
public:
    using Error::Error;
};

// Bad input from the caller: malformed JSON, unknown orchestration name, oversized payload...
class InvalidInput : public Error {
public:
    using Error::Error;
};

// No orchestration of that name is registered: thrown when a client attached to a host
// schedules a name the host's registry lacks. An instance whose name no host knows fails with
// error type "UnknownOrchestration" (the host that claims it records it).
class UnknownOrchestration : public InvalidInput {
public:
    using InvalidInput::InvalidInput;
};

// The database could not be used: locked, read-only, not a SQLite file, too new a schema.
class StoreError : public Error {
public:
    using Error::Error;
};

// A host lost the lease of an instance it was working on; its work was discarded.
class LeaseLost : public Error {
public:
    using Error::Error;
};

// A wait ran out of time (wait_for_completion, an external event with a timeout, an
// activity attempt's timeout).
class Timeout : public Error {
public:
    using Error::Error;
};

// What failed and why, as durable records it: in the history event of a failed activity or
// sub-orchestration, in a failed instance's error (InstanceState::error, as JSON with the same
// field names), and in the TaskFailed an orchestrator catches. Recorded in history, so replay
// gives the orchestrator the same details.
struct FailureDetails {
    std::string type;     // the exception's type ("std::runtime_error"), or durable's reason
                          // ("Timeout", "NonDeterminism", "TaskFailed", "UnknownOrchestration")
    std::string message;  // what() of the exception
    std::string details;  // extra text an activity gave (TaskFailed's details), truncated
    // The task that failed, when the failure is a task's: "activity" or "sub-orchestration",
    // its name, its task id in the orchestrator's history, and for a sub-orchestration its
    // instance id. Empty kind: not a task's failure.
    std::string task_kind, task_name, task_instance_id;
    std::int64_t task_id = -1;
    // The failure this one wraps: for an instance that failed because a task failed, the
    // task's failure; for a sub-orchestration, the child's failure; for an exception thrown
    // with std::throw_with_nested, the nested one. Null at the root cause.
    std::shared_ptr<const FailureDetails> inner;
};

// An activity (or sub-orchestration) failed; seen by orchestrator code that awaited it.
// `error_type()` is the type name of the original exception, `details()` extra text
// (truncated), `failure()` everything durable knows about it, including which task failed.
class TaskFailed : public Error {
public:
    TaskFailed(std::string error_type, std::string message, std::string details = {})
        : Error(message) {
        failure_.type = std::move(error_type);
        failure_.message = what();
        failure_.details = std::move(details);
    }
    explicit TaskFailed(FailureDetails failure) : Error(failure.message), failure_(std::move(failure)) {}
    const std::string& error_type() const noexcept { return failure_.type; }
    const std::string& details() const noexcept { return failure_.details; }
    // The name of the activity or sub-orchestration that failed ("" when not known).
    const std::string& task_name() const noexcept { return failure_.task_name; }
    const FailureDetails& failure() const noexcept { return failure_; }

private:
    FailureDetails failure_;
};

// An orchestration's terminal failure as seen by a client.
using ActivityFailed = TaskFailed;

}  // namespace durable
