// The episode-commit builder and the lingering-commit merge (see episode_commit.hpp).
#include "runtime/episode_commit.hpp"

#include <fmt/format.h>

namespace durable::detail {

namespace {

template <class T>
void append(std::vector<T>& into, std::vector<T>&& from) {
    if (into.empty()) {
        into = std::move(from);
        return;
    }
    into.reserve(into.size() + from.size());
    for (auto& x : from) into.push_back(std::move(x));
}

// The parent's inbox event saying how this sub-orchestration ended.
store::NewMessage parent_notice(const EpisodeOutcome& o) {
    bool ok = o.status == Status::Completed;
    Json e = ev::make(ok ? ev::kSubOrchestrationCompleted : ev::kSubOrchestrationFailed, o.now);
    e["id"] = o.parent_task_id;
    if (!o.parent_execution_id.empty()) e["x"] = o.parent_execution_id;
    if (ok) {
        e["result"] = o.output;
    } else if (o.status == Status::Failed) {
        Json err = o.error;
        err["message"] = fmt::format("sub-orchestration '{}' ({}) failed: {}", o.name, o.instance_id,
                                     err.is_object() ? err.value("message", "") : std::string());
        e["error"] = err;
    } else {
        e["error"] = ev::error_json("Terminated", fmt::format("sub-orchestration '{}' ({}) was terminated: {}", o.name,
                                                              o.instance_id, o.output.dump()));
    }
    return store::NewMessage{*o.parent_id, o.now, false, e.dump()};
}

}  // namespace

EpisodePlan build_episode_commit(const EpisodeOutcome& o, std::vector<Decision> decisions,
                                 const LocalCode& local, const NewId& new_id) {
    EpisodePlan plan;
    auto& c = plan.commit;
    c.instance_id = o.instance_id;
    c.owner = o.host_id;
    c.now = o.now;
    c.reset_history = o.reset_history;
    if (o.history) {
        c.events.reserve(o.history->size());
        for (const auto& h : *o.history) c.events.push_back(h.dump());
    }
    c.consumed_inbox = o.consumed_inbox;
    c.execution_id = o.execution_id;
    c.input = o.new_input;
    c.status = o.status;
    c.progressed = !c.events.empty();
    if (o.custom_status) c.custom_status = o.custom_status->dump();

    for (auto& d : decisions) {
        switch (d.kind) {
            case Decision::Kind::Timer: {
                Json e = ev::make(ev::kTimerFired, d.fire_at);
                e["id"] = d.id;
                e["x"] = o.execution_id;
                c.messages.push_back(store::NewMessage{o.instance_id, d.fire_at, false, e.dump()});
                plan.local.timers.push_back(d.fire_at);
                break;
            }
            case Decision::Kind::SendEvent: {
                Json e = ev::make(ev::kEventRaised, o.now);
                e["name"] = d.name;
                e["input"] = d.input;
                c.messages.push_back(store::NewMessage{d.target, o.now, false, e.dump()});
                break;
            }
            case Decision::Kind::SubOrchestration: {
                store::NewInstance child;
                child.id = d.target;
                child.name = d.name;
                child.execution_id = new_id();
                child.input = d.input.dump();
                child.parent_id = o.instance_id;
                child.parent_task_id = d.id;
                child.now = o.now;
                Json start = ev::make(ev::kExecutionStarted, o.now);
                start["name"] = d.name;
                start["input"] = d.input;
                start["px"] = o.execution_id;
                start["cid"] = o.correlation_id;
                if (!o.child_traceparent.empty()) {
                    start["tp"] = o.child_traceparent;
                    child.trace_parent = o.child_traceparent;
                }
                child.start_event = start.dump();
                if (local.version) child.orchestration_version = local.version(d.name);
                child.start_at = o.now;
                if (!local.orchestration || local.orchestration(d.name)) {
                    child.lease_owner = o.host_id;  // created leased to this host: it starts here, no claim
                    child.lease_expires_at = o.now + o.lease_ms;
                    plan.local.adopt.push_back(d.target);
                }
                c.new_instances.push_back(std::move(child));
                break;
            }
            case Decision::Kind::Activity:
                if (o.terminal) break;  // a finished instance dispatches nothing
                if (!local.activity || local.activity(d.name)) {
                    plan.local.activities.push_back(std::move(d));
                } else {
                    c.tasks.push_back(store::NewTask{o.instance_id, o.execution_id, d.name, d.id, d.input.dump(), o.now});
                }
                break;
        }
    }
    if (o.terminal) {
        c.release_lease = true;
        if (o.status == Status::Completed || o.status == Status::Terminated) c.output = o.output.dump();
        if (o.status == Status::Failed) c.error = o.error.dump();
        if (o.parent_id) c.messages.push_back(parent_notice(o));
    }
    return plan;
}

void merge_pending(PendingCommit& earlier, PendingCommit&& later) {
    {
        // Both commits name every field: one more in store::EpisodeCommit fails to compile here
        // until it is given its merge rule below.
        auto& [instance_id, owner, expected_version, now, reset_history, first_seq, events, consumed_inbox, messages,
               new_instances, tasks, completed_task_rows, status, progressed, execution_id, input, output, error,
               custom_status, release_lease, lease_expires_at, audit, orchestration_version] = earlier.commit;
        auto& [l_instance_id, l_owner, l_expected_version, l_now, l_reset_history, l_first_seq, l_events,
               l_consumed_inbox, l_messages, l_new_instances, l_tasks, l_completed_task_rows, l_status, l_progressed,
               l_execution_id, l_input, l_output, l_error, l_custom_status, l_release_lease, l_lease_expires_at,
               l_audit, l_orchestration_version] = later.commit;
        // Identity and the CAS are the earlier commit's: one version step for both.
        (void)instance_id, (void)owner, (void)expected_version;
        (void)l_instance_id, (void)l_owner, (void)l_expected_version;
        if (l_reset_history) {
            // Continue-as-new: the old generation's history goes anyway; the new one starts at
            // the later commit's first event.
            reset_history = true;
            first_seq = l_first_seq;
            events = std::move(l_events);
        } else {
            append(events, std::move(l_events));
        }
        append(consumed_inbox, std::move(l_consumed_inbox));
        append(messages, std::move(l_messages));
        append(new_instances, std::move(l_new_instances));
        append(tasks, std::move(l_tasks));
        append(completed_task_rows, std::move(l_completed_task_rows));
        append(audit, std::move(l_audit));
        // The instance row is the later one's.
        now = l_now;
        status = l_status;
        progressed = progressed || l_progressed;
        execution_id = std::move(l_execution_id);
        if (l_input) input = std::move(l_input);
        output = std::move(l_output);
        error = std::move(l_error);
        custom_status = std::move(l_custom_status);
        release_lease = l_release_lease;
        lease_expires_at = l_lease_expires_at;
        // Recorded once, by the first commit that carries it.
        if (!orchestration_version) orchestration_version = std::move(l_orchestration_version);
    }
    auto& [commit, consumed, terminal, status, adopt, since] = earlier;
    auto& [l_commit, l_consumed, l_terminal, l_status, l_adopt, l_since] = later;
    (void)commit, (void)l_commit;  // merged above
    append(consumed, std::move(l_consumed));
    terminal = l_terminal;
    status = l_status;
    append(adopt, std::move(l_adopt));
    (void)l_since;  // the merged commit lingers from when its first episode ended
    (void)since;
}

}  // namespace durable::detail
