// Orchestrations run by connected workers (see remote_orchestrator.hpp).
#include "server/remote_orchestrator.hpp"

#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <unordered_map>

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

// Appends past events [from, end) to `out` in the protocol's form; `batch` is the timestamp of
// the last OrchestratorStarted written (each episode's events are stamped with its time: an
// OrchestratorStarted opens each such batch, so the worker's clock on replay is what it was live).
void append_past(const std::vector<Json>& past, std::size_t from, std::optional<std::int64_t>& batch,
                 google::protobuf::RepeatedPtrField<::HistoryEvent>* out) {
    for (std::size_t i = from; i < past.size(); ++i) {
        const auto& e = past[i];
        std::int64_t ts = ts_of(e);
        if (!is_decision(e) && batch != ts) {
            *out->Add() = orchestrator_started(ts);
            batch = ts;
        }
        *out->Add() = to_protocol(e);
    }
}

// Each step re-sends the execution's whole history, as the protocol asks. The protocol form
// of what was sent before is kept per instance while its steps go out, so each event is
// mapped once, not once per step: a step maps only its new events.
class PastEvents {
public:
    void fill(const RemoteStep& step, ::OrchestratorRequest& req) {
        std::lock_guard lock(mu_);
        auto [it, added] = cache_.try_emplace(step.instance_id);
        Entry& c = it->second;
        if (added) {
            order_.push_back(step.instance_id);
            evict_locked();
        }
        // Reused only for the same execution whose past begins with what was mapped (a host
        // that lost and regained the instance, or a rewind, may send a past of its own). The
        // check hashes the events in place: no copy, no mapping.
        bool same = c.execution_id == step.execution_id && c.hashes.size() <= step.past.size();
        for (std::size_t i = 0; same && i < c.hashes.size(); ++i) same = std::hash<Json>{}(step.past[i]) == c.hashes[i];
        if (!same) {
            c = Entry{};
            c.execution_id = step.execution_id;
        }
        append_past(step.past, c.hashes.size(), c.batch, &c.protocol);
        for (std::size_t i = c.hashes.size(); i < step.past.size(); ++i) c.hashes.push_back(std::hash<Json>{}(step.past[i]));
        *req.mutable_pastevents() = c.protocol;
    }

    void forget(const std::string& instance_id) {
        std::lock_guard lock(mu_);
        cache_.erase(instance_id);
    }

private:
    // Instances whose steps are out at once are bounded by the streams' outstanding items;
    // the bound here only keeps forgotten entries (an instance moved away) from piling up.
    static constexpr std::size_t kMaxInstances = 16384;
    struct Entry {
        std::string execution_id;
        std::vector<std::size_t> hashes;  // of the events of step.past mapped into `protocol`
        std::optional<std::int64_t> batch;
        google::protobuf::RepeatedPtrField<::HistoryEvent> protocol;
    };
    void evict_locked() {
        while (order_.size() > kMaxInstances) {
            cache_.erase(order_.front());
            order_.pop_front();
        }
        // order_ keeps ids already forgotten: compact it once it holds many of them.
        if (order_.size() > 2 * cache_.size() + 1024) {
            std::erase_if(order_, [&](const std::string& id) { return cache_.count(id) == 0; });
        }
    }
    std::mutex mu_;
    std::unordered_map<std::string, Entry> cache_;  // guarded by mu_
    std::deque<std::string> order_;                 // guarded by mu_: oldest first
};

class HubOrchestrator final : public RemoteOrchestrator {
public:
    explicit HubOrchestrator(std::shared_ptr<WorkItemHub> hub) : hub_(std::move(hub)) {}

    bool dispatch(RemoteStep step, std::function<void(RemoteReply)> reply) override {
        ::WorkItem w;
        auto* req = w.mutable_orchestratorrequest();
        req->set_instanceid(step.instance_id);
        req->mutable_executionid()->set_value(step.execution_id);
        past_->fill(step, *req);
        *req->add_newevents() = orchestrator_started(step.now_ms);
        for (const auto& e : step.fresh) *req->add_newevents() = to_protocol(e);
        auto done = [reply = std::move(reply), past = past_, id = step.instance_id](WorkResult r) {
            RemoteReply out;
            if (r.kind != WorkResult::Kind::Orchestrator) {
                out.refused = true;
                out.why = r.refused;
            } else {
                out.decisions = decisions_of(r.orchestrator, 0);
                out.applied = std::move(r.applied);
                // A finished execution sends no more steps.
                if (out.decisions.end != RemoteDecisions::End::None) past->forget(id);
            }
            reply(std::move(out));
        };
        if (!hub_->submit(orchestrator_key(step.instance_id), std::move(w), std::move(done))) {
            past_->forget(step.instance_id);
            return false;
        }
        return true;
    }

    void withdraw(const std::string& instance_id) override {
        hub_->withdraw(orchestrator_key(instance_id));
        past_->forget(instance_id);
    }

    bool available() const override { return hub_->stats().streams > 0; }

private:
    std::shared_ptr<WorkItemHub> hub_;
    std::shared_ptr<PastEvents> past_ = std::make_shared<PastEvents>();
};

}  // namespace

std::shared_ptr<RemoteOrchestrator> remote_orchestrator(std::shared_ptr<WorkItemHub> hub) {
    return std::make_shared<HubOrchestrator>(std::move(hub));
}

::OrchestratorRequest orchestrator_request(const RemoteStep& step) {
    ::OrchestratorRequest req;
    req.set_instanceid(step.instance_id);
    req.mutable_executionid()->set_value(step.execution_id);
    std::optional<std::int64_t> batch;
    append_past(step.past, 0, batch, req.mutable_pastevents());
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
