// HistoryEntry's typed accessors and the names of the event types.
#include <array>

#include "durable/history.hpp"

namespace durable {

namespace {

constexpr std::array<std::pair<EventType, std::string_view>, 18> kNames{{
    {EventType::ExecutionStarted, "ExecutionStarted"},
    {EventType::TaskScheduled, "TaskScheduled"},
    {EventType::TaskCompleted, "TaskCompleted"},
    {EventType::TaskFailed, "TaskFailed"},
    {EventType::TimerCreated, "TimerCreated"},
    {EventType::TimerFired, "TimerFired"},
    {EventType::SubOrchestrationCreated, "SubOrchestrationCreated"},
    {EventType::SubOrchestrationCompleted, "SubOrchestrationCompleted"},
    {EventType::SubOrchestrationFailed, "SubOrchestrationFailed"},
    {EventType::EventRaised, "EventRaised"},
    {EventType::EventSent, "EventSent"},
    {EventType::ExecutionCompleted, "ExecutionCompleted"},
    {EventType::ContinuedAsNew, "ContinuedAsNew"},
    {EventType::ExecutionTerminated, "ExecutionTerminated"},
    {EventType::ExecutionSuspended, "ExecutionSuspended"},
    {EventType::ExecutionResumed, "ExecutionResumed"},
    {EventType::PatchApplied, "PatchApplied"},
    {EventType::ExecutionRewound, "ExecutionRewound"},
}};

const Json* field(const Json& e, const char* key) {
    if (!e.is_object()) return nullptr;
    auto it = e.find(key);
    return it == e.end() ? nullptr : &*it;
}

std::optional<std::int64_t> int_field(const Json& e, const char* key) {
    const Json* f = field(e, key);
    if (!f || !f->is_number_integer()) return std::nullopt;
    return f->get<std::int64_t>();
}

std::string string_field(const Json& e, const char* key) {
    const Json* f = field(e, key);
    return f && f->is_string() ? f->get<std::string>() : std::string();
}

bool carries_task_id(EventType t) {
    switch (t) {
        case EventType::TaskScheduled:
        case EventType::TaskCompleted:
        case EventType::TaskFailed:
        case EventType::TimerCreated:
        case EventType::TimerFired:
        case EventType::SubOrchestrationCreated:
        case EventType::SubOrchestrationCompleted:
        case EventType::SubOrchestrationFailed:
        case EventType::EventSent:
            return true;
        default:
            return false;
    }
}

}  // namespace

std::string_view to_string(EventType t) {
    for (const auto& [type, name] : kNames) {
        if (type == t) return name;
    }
    return "Unknown";
}

EventType event_type_from_string(std::string_view name) {
    for (const auto& [type, n] : kNames) {
        if (n == name) return type;
    }
    return EventType::Unknown;
}

EventType HistoryEntry::type() const {
    const Json* t = field(event, "t");
    if (!t || !t->is_string()) return EventType::Unknown;
    return event_type_from_string(t->get_ref<const std::string&>());
}

std::int64_t HistoryEntry::timestamp_ms() const {
    return int_field(event, "ts").value_or(0);
}

std::chrono::system_clock::time_point HistoryEntry::timestamp() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(timestamp_ms()));
}

std::optional<std::int64_t> HistoryEntry::task_id() const {
    if (!carries_task_id(type())) return std::nullopt;
    return int_field(event, "id");
}

std::string HistoryEntry::name() const {
    return string_field(event, "name");
}

Json HistoryEntry::input() const {
    const Json* f = field(event, "input");
    return f ? *f : Json();
}

Json HistoryEntry::result() const {
    const Json* f = field(event, "result");
    return f ? *f : Json();
}

std::optional<FailureDetails> HistoryEntry::failure() const {
    const Json* f = field(event, "error");
    if (!f || f->is_null()) return std::nullopt;
    return failure_from_json(*f);
}

std::string HistoryEntry::target_instance() const {
    return string_field(event, "instance");
}

std::optional<std::chrono::system_clock::time_point> HistoryEntry::fire_at() const {
    if (type() != EventType::TimerCreated) return std::nullopt;
    auto at = int_field(event, "fire_at");
    if (!at) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(*at));
}

std::optional<Status> HistoryEntry::final_status() const {
    if (type() != EventType::ExecutionCompleted) return std::nullopt;
    return status_from_string(string_field(event, "status"));
}

Json HistoryEntry::reason() const {
    const Json* f = field(event, "reason");
    return f ? *f : Json();
}

}  // namespace durable
