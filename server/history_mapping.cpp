// Our history events <-> the protocol's HistoryEvent (see history_mapping.hpp).
#include "server/history_mapping.hpp"

#include <fmt/format.h>

#include "server/protocol_state.hpp"

namespace durable::server {
namespace {

// Sets an optional StringValue from a JSON payload; null leaves it absent. `field` returns
// the mutable field (only called when there is something to set).
template <class Field>
void set_payload(const Json& value, Field field) {
    if (auto text = payload_text(value)) field()->set_value(*text);
}

std::int64_t int_field(const Json& e, const char* key, std::int64_t fallback = -1) {
    auto it = e.find(key);
    return it != e.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

std::string str_field(const Json& e, const char* key) {
    auto it = e.find(key);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int32_t task_id(const Json& e) { return static_cast<std::int32_t>(int_field(e, "id")); }

void to_failure(const Json& error, ::TaskFailureDetails* f) {
    if (!error.is_object()) {
        f->set_errortype("Error");
        f->set_errormessage(error.is_string() ? error.get<std::string>() : error.dump());
        return;
    }
    f->set_errortype(str_field(error, "type").empty() ? "Error" : str_field(error, "type"));
    f->set_errormessage(str_field(error, "message"));
    if (auto d = str_field(error, "details"); !d.empty()) f->mutable_stacktrace()->set_value(d);
}

Json from_failure(const ::TaskFailureDetails& f) {
    Json e = {{"type", f.errortype().empty() ? "Error" : f.errortype()}, {"message", f.errormessage()}};
    if (f.has_stacktrace() && !f.stacktrace().value().empty()) e["details"] = f.stacktrace().value();
    return e;
}

Json event(std::string_view type, std::int64_t ts) {
    Json e = Json::object();
    e["t"] = type;
    e["ts"] = ts;
    return e;
}

// A reason travels as the JSON text of the string.
std::string reason_text(const Json& e) { return Json(str_field(e, "reason")).dump(); }

std::string reason_from(const google::protobuf::StringValue& v, bool present) {
    Json r = payload_from(v, present, "reason");
    return r.is_string() ? r.get<std::string>() : r.is_null() ? std::string() : r.dump();
}

}  // namespace

Json payload_from(const google::protobuf::StringValue& v, bool present, const char* what) {
    if (!present || v.value().empty()) return Json();
    try {
        return Json::parse(v.value());
    } catch (const Json::parse_error& e) {
        throw MappingError(fmt::format("{} is not JSON: {}", what, e.what()));
    }
}

std::optional<std::string> payload_text(const Json& value) {
    if (value.is_null()) return std::nullopt;
    return value.dump();
}

::HistoryEvent to_protocol(const Json& e) {
    ::HistoryEvent h;
    h.set_eventid(-1);
    set_timestamp(h.mutable_timestamp(), int_field(e, "ts", 0));
    const std::string t = str_field(e, "t");
    const Json null;
    auto input = e.contains("input") ? e["input"] : null;
    auto result = e.contains("result") ? e["result"] : null;
    if (t == "ExecutionStarted") {
        auto* x = h.mutable_executionstarted();
        x->set_name(str_field(e, "name"));
        set_payload(input, [&] { return x->mutable_input(); });
    } else if (t == "TaskScheduled") {
        h.set_eventid(task_id(e));
        auto* x = h.mutable_taskscheduled();
        x->set_name(str_field(e, "name"));
        set_payload(input, [&] { return x->mutable_input(); });
    } else if (t == "TaskCompleted") {
        auto* x = h.mutable_taskcompleted();
        x->set_taskscheduledid(task_id(e));
        set_payload(result, [&] { return x->mutable_result(); });
    } else if (t == "TaskFailed") {
        auto* x = h.mutable_taskfailed();
        x->set_taskscheduledid(task_id(e));
        to_failure(e.value("error", Json()), x->mutable_failuredetails());
    } else if (t == "TimerCreated") {
        h.set_eventid(task_id(e));
        set_timestamp(h.mutable_timercreated()->mutable_fireat(), int_field(e, "fire_at", 0));
    } else if (t == "TimerFired") {
        auto* x = h.mutable_timerfired();
        x->set_timerid(task_id(e));
        set_timestamp(x->mutable_fireat(), int_field(e, "ts", 0));  // a timer's event is stamped when it was due
    } else if (t == "SubOrchestrationCreated") {
        h.set_eventid(task_id(e));
        auto* x = h.mutable_suborchestrationinstancecreated();
        x->set_instanceid(str_field(e, "instance"));
        x->set_name(str_field(e, "name"));
        set_payload(input, [&] { return x->mutable_input(); });
    } else if (t == "SubOrchestrationCompleted") {
        auto* x = h.mutable_suborchestrationinstancecompleted();
        x->set_taskscheduledid(task_id(e));
        set_payload(result, [&] { return x->mutable_result(); });
    } else if (t == "SubOrchestrationFailed") {
        auto* x = h.mutable_suborchestrationinstancefailed();
        x->set_taskscheduledid(task_id(e));
        to_failure(e.value("error", Json()), x->mutable_failuredetails());
    } else if (t == "EventRaised") {
        auto* x = h.mutable_eventraised();
        x->set_name(str_field(e, "name"));
        set_payload(input, [&] { return x->mutable_input(); });
    } else if (t == "EventSent") {
        h.set_eventid(task_id(e));
        auto* x = h.mutable_eventsent();
        x->set_instanceid(str_field(e, "instance"));
        x->set_name(str_field(e, "name"));
        set_payload(input, [&] { return x->mutable_input(); });
    } else if (t == "ExecutionCompleted") {
        auto* x = h.mutable_executioncompleted();
        if (str_field(e, "status") == "Failed") {
            x->set_orchestrationstatus(ORCHESTRATION_STATUS_FAILED);
            to_failure(e.value("error", Json()), x->mutable_failuredetails());
        } else {
            x->set_orchestrationstatus(ORCHESTRATION_STATUS_COMPLETED);
            set_payload(result, [&] { return x->mutable_result(); });
        }
    } else if (t == "ContinuedAsNew") {
        set_payload(input, [&] { return h.mutable_continueasnew()->mutable_input(); });
    } else if (t == "ExecutionTerminated") {
        h.mutable_executionterminated()->mutable_input()->set_value(reason_text(e));
    } else if (t == "ExecutionSuspended") {
        h.mutable_executionsuspended()->mutable_input()->set_value(reason_text(e));
    } else if (t == "ExecutionResumed") {
        h.mutable_executionresumed()->mutable_input()->set_value(reason_text(e));
    } else {
        throw MappingError(fmt::format("history event type '{}' has no protocol form", t));
    }
    return h;
}

Json from_protocol(const ::HistoryEvent& h) {
    const std::int64_t ts = to_ms(h.timestamp());
    switch (h.eventType_case()) {
        case ::HistoryEvent::kExecutionStarted: {
            const auto& x = h.executionstarted();
            Json e = event("ExecutionStarted", ts);
            e["name"] = x.name();
            e["input"] = payload_from(x.input(), x.has_input(), "executionStarted.input");
            return e;
        }
        case ::HistoryEvent::kTaskScheduled: {
            const auto& x = h.taskscheduled();
            Json e = event("TaskScheduled", ts);
            e["id"] = h.eventid();
            e["name"] = x.name();
            e["input"] = payload_from(x.input(), x.has_input(), "taskScheduled.input");
            return e;
        }
        case ::HistoryEvent::kTaskCompleted: {
            const auto& x = h.taskcompleted();
            Json e = event("TaskCompleted", ts);
            e["id"] = x.taskscheduledid();
            e["result"] = payload_from(x.result(), x.has_result(), "taskCompleted.result");
            return e;
        }
        case ::HistoryEvent::kTaskFailed: {
            Json e = event("TaskFailed", ts);
            e["id"] = h.taskfailed().taskscheduledid();
            e["error"] = from_failure(h.taskfailed().failuredetails());
            return e;
        }
        case ::HistoryEvent::kTimerCreated: {
            Json e = event("TimerCreated", ts);
            e["id"] = h.eventid();
            e["fire_at"] = to_ms(h.timercreated().fireat());
            return e;
        }
        case ::HistoryEvent::kTimerFired: {
            Json e = event("TimerFired", to_ms(h.timerfired().fireat()));
            e["id"] = h.timerfired().timerid();
            return e;
        }
        case ::HistoryEvent::kSubOrchestrationInstanceCreated: {
            const auto& x = h.suborchestrationinstancecreated();
            Json e = event("SubOrchestrationCreated", ts);
            e["id"] = h.eventid();
            e["name"] = x.name();
            e["instance"] = x.instanceid();
            e["input"] = payload_from(x.input(), x.has_input(), "subOrchestrationInstanceCreated.input");
            return e;
        }
        case ::HistoryEvent::kSubOrchestrationInstanceCompleted: {
            const auto& x = h.suborchestrationinstancecompleted();
            Json e = event("SubOrchestrationCompleted", ts);
            e["id"] = x.taskscheduledid();
            e["result"] = payload_from(x.result(), x.has_result(), "subOrchestrationInstanceCompleted.result");
            return e;
        }
        case ::HistoryEvent::kSubOrchestrationInstanceFailed: {
            Json e = event("SubOrchestrationFailed", ts);
            e["id"] = h.suborchestrationinstancefailed().taskscheduledid();
            e["error"] = from_failure(h.suborchestrationinstancefailed().failuredetails());
            return e;
        }
        case ::HistoryEvent::kEventRaised: {
            Json e = event("EventRaised", ts);
            e["name"] = h.eventraised().name();
            e["input"] = payload_from(h.eventraised().input(), h.eventraised().has_input(), "eventRaised.input");
            return e;
        }
        case ::HistoryEvent::kEventSent: {
            const auto& x = h.eventsent();
            Json e = event("EventSent", ts);
            e["id"] = h.eventid();
            e["name"] = x.name();
            e["instance"] = x.instanceid();
            e["input"] = payload_from(x.input(), x.has_input(), "eventSent.input");
            return e;
        }
        case ::HistoryEvent::kExecutionCompleted: {
            const auto& x = h.executioncompleted();
            Json e = event("ExecutionCompleted", ts);
            if (x.orchestrationstatus() == ORCHESTRATION_STATUS_FAILED) {
                e["status"] = "Failed";
                e["error"] = from_failure(x.failuredetails());
            } else if (x.orchestrationstatus() == ORCHESTRATION_STATUS_COMPLETED) {
                e["status"] = "Completed";
                e["result"] = payload_from(x.result(), x.has_result(), "executionCompleted.result");
            } else {
                throw MappingError(fmt::format("executionCompleted with status {} is not a completion we record",
                                               static_cast<int>(x.orchestrationstatus())));
            }
            return e;
        }
        case ::HistoryEvent::kContinueAsNew: {
            Json e = event("ContinuedAsNew", ts);
            e["input"] = payload_from(h.continueasnew().input(), h.continueasnew().has_input(), "continueAsNew.input");
            return e;
        }
        case ::HistoryEvent::kExecutionTerminated: {
            Json e = event("ExecutionTerminated", ts);
            e["reason"] = reason_from(h.executionterminated().input(), h.executionterminated().has_input());
            return e;
        }
        case ::HistoryEvent::kExecutionSuspended: {
            Json e = event("ExecutionSuspended", ts);
            e["reason"] = reason_from(h.executionsuspended().input(), h.executionsuspended().has_input());
            return e;
        }
        case ::HistoryEvent::kExecutionResumed: {
            Json e = event("ExecutionResumed", ts);
            e["reason"] = reason_from(h.executionresumed().input(), h.executionresumed().has_input());
            return e;
        }
        case ::HistoryEvent::kOrchestratorStarted:
        case ::HistoryEvent::kOrchestratorCompleted:
        case ::HistoryEvent::kGenericEvent:
        case ::HistoryEvent::kHistoryState:
        case ::HistoryEvent::EVENTTYPE_NOT_SET:
            break;
    }
    throw MappingError(fmt::format("history event kind {} is not one we keep", static_cast<int>(h.eventType_case())));
}

Json scheduling_event(const ::OrchestratorAction& a, std::int64_t now_ms) {
    if (a.id() <= 0) throw MappingError(fmt::format("action id {} is not a task id (1, 2, 3, ...)", a.id()));
    Json e;
    switch (a.orchestratorActionType_case()) {
        case ::OrchestratorAction::kScheduleTask: {
            const auto& x = a.scheduletask();
            if (x.name().empty()) throw MappingError(fmt::format("scheduleTask {} has no activity name", a.id()));
            e = event("TaskScheduled", now_ms);
            e["name"] = x.name();
            e["input"] = payload_from(x.input(), x.has_input(), "scheduleTask.input");
            break;
        }
        case ::OrchestratorAction::kCreateTimer: {
            e = event("TimerCreated", now_ms);
            e["fire_at"] = to_ms(a.createtimer().fireat());
            break;
        }
        case ::OrchestratorAction::kCreateSubOrchestration: {
            const auto& x = a.createsuborchestration();
            if (x.name().empty()) {
                throw MappingError(fmt::format("createSubOrchestration {} has no orchestration name", a.id()));
            }
            e = event("SubOrchestrationCreated", now_ms);
            e["name"] = x.name();
            e["instance"] = x.instanceid();
            e["input"] = payload_from(x.input(), x.has_input(), "createSubOrchestration.input");
            break;
        }
        case ::OrchestratorAction::kSendEvent: {
            const auto& x = a.sendevent();
            if (x.instance().instanceid().empty() || x.name().empty()) {
                throw MappingError(fmt::format("sendEvent {} needs a target instance and an event name", a.id()));
            }
            e = event("EventSent", now_ms);
            e["name"] = x.name();
            e["instance"] = x.instance().instanceid();
            e["input"] = payload_from(x.data(), x.has_data(), "sendEvent.data");
            break;
        }
        case ::OrchestratorAction::kCompleteOrchestration:
            throw MappingError("completeOrchestration is not a scheduling action");
        case ::OrchestratorAction::kTerminateOrchestration:
            throw MappingError("terminateOrchestration (of another instance) is not served; use the client's "
                               "TerminateInstance");
        case ::OrchestratorAction::ORCHESTRATORACTIONTYPE_NOT_SET:
            throw MappingError(fmt::format("action {} has no kind", a.id()));
    }
    e["id"] = a.id();
    return e;
}

Completion completion_of(const ::CompleteOrchestrationAction& a) {
    Completion c;
    switch (a.orchestrationstatus()) {
        case ORCHESTRATION_STATUS_COMPLETED:
            c.kind = Completion::Kind::Completed;
            c.result = payload_from(a.result(), a.has_result(), "completeOrchestration.result");
            break;
        case ORCHESTRATION_STATUS_FAILED:
            c.kind = Completion::Kind::Failed;
            if (a.has_failuredetails()) {
                c.error = from_failure(a.failuredetails());
            } else {
                // An SDK that could not even run the orchestrator puts its text in `result`.
                c.error = {{"type", "OrchestratorFailed"},
                           {"message", a.has_result() ? a.result().value() : std::string("failed without details")}};
            }
            break;
        case ORCHESTRATION_STATUS_TERMINATED:
            c.kind = Completion::Kind::Terminated;
            c.terminate_reason = reason_from(a.result(), a.has_result());
            break;
        case ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
            c.kind = Completion::Kind::ContinuedAsNew;
            c.result = payload_from(a.result(), a.has_result(), "completeOrchestration.result");
            for (const auto& h : a.carryoverevents()) c.carryover.push_back(from_protocol(h));
            break;
        default:
            throw MappingError(fmt::format("completeOrchestration with status {} is not an end",
                                           static_cast<int>(a.orchestrationstatus())));
    }
    return c;
}

}  // namespace durable::server
