// runtime/history.hpp — the history events of an instance, as JSON.
//
// Every event has "t" (its type) and "ts" (ms since epoch). Scheduled-type events carry the
// task "id" the code gave the decision; completion-type events carry the id they complete
// and "x", the execution id they belong to (a completion for an older generation, after a
// continue-as-new, is dropped).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace durable::detail::ev {

using Json = nlohmann::json;

inline constexpr std::string_view kExecutionStarted = "ExecutionStarted";
inline constexpr std::string_view kTaskScheduled = "TaskScheduled";
inline constexpr std::string_view kTaskCompleted = "TaskCompleted";
inline constexpr std::string_view kTaskFailed = "TaskFailed";
inline constexpr std::string_view kTimerCreated = "TimerCreated";
inline constexpr std::string_view kTimerFired = "TimerFired";
inline constexpr std::string_view kSubOrchestrationCreated = "SubOrchestrationCreated";
inline constexpr std::string_view kSubOrchestrationCompleted = "SubOrchestrationCompleted";
inline constexpr std::string_view kSubOrchestrationFailed = "SubOrchestrationFailed";
inline constexpr std::string_view kEventRaised = "EventRaised";
inline constexpr std::string_view kEventSent = "EventSent";
inline constexpr std::string_view kExecutionCompleted = "ExecutionCompleted";
inline constexpr std::string_view kContinuedAsNew = "ContinuedAsNew";
inline constexpr std::string_view kExecutionTerminated = "ExecutionTerminated";
inline constexpr std::string_view kExecutionSuspended = "ExecutionSuspended";
inline constexpr std::string_view kExecutionResumed = "ExecutionResumed";
// A patch marker: the execution reached ctx.patched("patch") for the first time ("patch").
inline constexpr std::string_view kPatchApplied = "PatchApplied";
// Client::rewind: the events from the failure that failed the instance up to this marker
// are left out of replay ("from": the first one's seq, "reason"); see runtime/rewind.hpp.
inline constexpr std::string_view kExecutionRewound = "ExecutionRewound";

inline std::string_view type_of(const Json& e) {
    auto it = e.find("t");
    if (it == e.end() || !it->is_string()) return {};
    return it->get_ref<const std::string&>();
}

inline bool is_scheduling(std::string_view t) {
    return t == kTaskScheduled || t == kTimerCreated || t == kSubOrchestrationCreated || t == kEventSent;
}

// The result of something a scheduling event started (its "id" names which).
inline bool is_completion(std::string_view t) {
    return t == kTaskCompleted || t == kTaskFailed || t == kTimerFired || t == kSubOrchestrationCompleted ||
           t == kSubOrchestrationFailed;
}

inline bool is_control(std::string_view t) {
    return t == kExecutionTerminated || t == kExecutionSuspended || t == kExecutionResumed;
}

inline Json make(std::string_view type, std::int64_t ts) {
    Json e = Json::object();
    e["t"] = type;
    e["ts"] = ts;
    return e;
}

// An error as stored in history and in the instance row.
inline Json error_json(std::string_view type, std::string_view message, std::string_view details = {}) {
    Json e = {{"type", type}, {"message", message}};
    if (!details.empty()) e["details"] = details;
    return e;
}

}  // namespace durable::detail::ev
