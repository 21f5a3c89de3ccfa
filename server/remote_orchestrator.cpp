// Orchestrations run by connected workers (see remote_orchestrator.hpp).
#include "server/remote_orchestrator.hpp"

#include <fmt/format.h>

#include "server/history_mapping.hpp"
#include "server/protocol_state.hpp"

namespace durable::server {
namespace {

::HistoryEvent orchestrator_started(std::int64_t ms) {
    ::HistoryEvent h;
    h.set_eventid(-1);
    set_timestamp(h.mutable_timestamp(), ms);
    h.mutable_orchestratorstarted();
    return h;
}

std::int64_t ts_of(const Json& e) {
    auto it = e.find("ts");
    return it != e.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

bool is_decision(const Json& e) {
    auto t = e.value("t", std::string());
    return t == "TaskScheduled" || t == "TimerCreated" || t == "SubOrchestrationCreated" || t == "EventSent";
}

// A custom status as an SDK set it: raw text. JSON that is not a string is kept as JSON (C++
// readers see the value); anything else as the text itself, so it reads back unchanged.
Json custom_status_of(const std::string& text) {
    try {
        Json v = Json::parse(text);
        if (!v.is_string()) return v;
    } catch (const Json::parse_error&) {
    }
    return Json(text);
}

class HubOrchestrator final : public RemoteOrchestrator {
public:
    explicit HubOrchestrator(std::shared_ptr<WorkItemHub> hub) : hub_(std::move(hub)) {}

    bool dispatch(RemoteStep step, std::function<void(RemoteReply)> reply) override {
        ::WorkItem w;
        *w.mutable_orchestratorrequest() = orchestrator_request(step);
        auto done = [reply = std::move(reply)](WorkResult r) {
            RemoteReply out;
            if (r.kind != WorkResult::Kind::Orchestrator) {
                out.refused = true;
                out.why = r.refused;
            } else {
                out.decisions = decisions_of(r.orchestrator, 0);
                out.applied = std::move(r.applied);
            }
            reply(std::move(out));
        };
        return hub_->submit(orchestrator_key(step.instance_id), std::move(w), std::move(done));
    }

    void withdraw(const std::string& instance_id) override { hub_->withdraw(orchestrator_key(instance_id)); }

    bool available() const override { return hub_->stats().streams > 0; }

private:
    std::shared_ptr<WorkItemHub> hub_;
};

}  // namespace

std::shared_ptr<RemoteOrchestrator> remote_orchestrator(std::shared_ptr<WorkItemHub> hub) {
    return std::make_shared<HubOrchestrator>(std::move(hub));
}

::OrchestratorRequest orchestrator_request(const RemoteStep& step) {
    ::OrchestratorRequest req;
    req.set_instanceid(step.instance_id);
    req.mutable_executionid()->set_value(step.execution_id);
    // Each episode's events are stamped with its time: an OrchestratorStarted opens each such
    // batch, so the worker's clock on replay is what it was live.
    std::optional<std::int64_t> batch;
    for (const auto& e : step.past) {
        std::int64_t ts = ts_of(e);
        if (!is_decision(e) && batch != ts) {
            *req.add_pastevents() = orchestrator_started(ts);
            batch = ts;
        }
        *req.add_pastevents() = to_protocol(e);
    }
    *req.add_newevents() = orchestrator_started(step.now_ms);
    for (const auto& e : step.fresh) *req.add_newevents() = to_protocol(e);
    return req;
}

RemoteDecisions decisions_of(const ::OrchestratorResponse& resp, std::int64_t now_ms) {
    RemoteDecisions d;
    try {
        for (const auto& a : resp.actions()) {
            if (a.has_completeorchestration()) {
                Completion c = completion_of(a.completeorchestration());
                switch (c.kind) {
                    case Completion::Kind::Completed:
                        d.end = RemoteDecisions::End::Completed;
                        d.result = std::move(c.result);
                        break;
                    case Completion::Kind::Failed:
                        d.end = RemoteDecisions::End::Failed;
                        d.error = std::move(c.error);
                        break;
                    case Completion::Kind::Terminated:
                        d.end = RemoteDecisions::End::Terminated;
                        d.terminate_reason = std::move(c.terminate_reason);
                        break;
                    case Completion::Kind::ContinuedAsNew:
                        d.end = RemoteDecisions::End::ContinuedAsNew;
                        d.result = std::move(c.result);
                        d.carryover = std::move(c.carryover);
                        break;
                }
                continue;
            }
            d.scheduled.push_back(scheduling_event(a, now_ms));
        }
    } catch (const MappingError& e) {
        d = RemoteDecisions{};
        d.end = RemoteDecisions::End::Failed;
        d.error = {{"type", "InvalidAction"},
                   {"message", fmt::format("the worker answered for instance '{}' with an action this server cannot "
                                           "record: {}",
                                           resp.instanceid(), e.what())}};
    }
    // The SDKs send their custom status with every answer, empty when none was set.
    if (resp.has_customstatus() && !resp.customstatus().value().empty()) {
        d.custom_status = custom_status_of(resp.customstatus().value());
    }
    return d;
}

}  // namespace durable::server
