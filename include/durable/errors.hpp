// durable/errors.hpp — the exceptions of durable's public API.
//
// Every exception durable throws derives from durable::Error. Each message says what was
// wrong and what to do about it. Inside hot loops and the store, expected outcomes (a lost
// claim race, a lease conflict) are values, not exceptions.
#pragma once

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

// An activity (or sub-orchestration) failed; seen by orchestrator code that awaited it.
// `error_type()` is the type name of the original exception, `details()` extra text
// (truncated).
class TaskFailed : public Error {
public:
    TaskFailed(std::string error_type, std::string message, std::string details = {})
        : Error(message), error_type_(std::move(error_type)), details_(std::move(details)) {}
    const std::string& error_type() const noexcept { return error_type_; }
    const std::string& details() const noexcept { return details_; }

private:
    std::string error_type_;
    std::string details_;
};

// An orchestration's terminal failure as seen by a client.
using ActivityFailed = TaskFailed;

}  // namespace durable
