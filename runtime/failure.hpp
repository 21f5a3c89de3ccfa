// runtime/failure.hpp — exceptions turned into the failure records durable keeps.
//
// One place says what an exception is called (its type name), what it says (its message) and
// how a failure is written down as JSON: in a TaskFailed history event, in a failed
// instance's error, and back into the FailureDetails of the TaskFailed an orchestrator
// catches. Records carry the failing task and the inner failure, so nothing is lost between
// an activity's exception and the instance's error.
#pragma once

#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "durable/errors.hpp"

namespace durable::detail {

using Json = nlohmann::json;

// The demangled type name of the exception in `e` ("std::runtime_error"); for a TaskFailed,
// "TaskFailed"; "unknown" for an exception not derived from std::exception.
std::string exception_type_name(const std::exception_ptr& e);
// what() of the exception in `e`, or a placeholder for one not derived from std::exception
// (or for no exception at all).
std::string exception_message(const std::exception_ptr& e);

// The failure record of `e`: for a TaskFailed its FailureDetails; for any other exception its
// type name and message, with the exceptions nested in it (std::throw_with_nested) as the
// inner chain. `details` is cut to `max_details` bytes.
Json failure_json(const std::exception_ptr& e, std::size_t max_details = 4096);

// The instance's error when its orchestrator ended with `e` (uncaught): a TaskFailed becomes
// {type "TaskFailed", the task that failed, a message naming it, inner: the task's failure};
// anything else is failure_json(e). (A failure durable decides itself, NonDeterminism say, is
// ev::error_json in runtime/history.hpp.)
Json orchestrator_failure_json(const std::exception_ptr& e);

}  // namespace durable::detail
