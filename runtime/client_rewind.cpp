// Client::rewind and Client::restart: putting a failed instance back to work, or running an
// instance's orchestration again.
//
// A rewind never rewrites history. It plans, from the failed instance's history, what the
// instance needs to carry on from its failure point, and hands it to the store as one
// all-or-none write (store::Rewind): an ExecutionRewound marker for its inbox (the host that
// loads the instance replays it at the end of history, which leaves the rewound range out:
// runtime/rewind.hpp), then the events of that range that must not be lost (results of work
// scheduled before the failure, events raised), then the due times of its timers still
// pending (the failure's commit dropped their inbox rows). The failed activity, pending again
// in replay, is dispatched again by the host that loads the instance; a failed
// sub-orchestration is rewound in the same write.
#include <fmt/format.h>

#include <map>
#include <set>

#include "durable/errors.hpp"
#include "runtime/client_support.hpp"
#include "runtime/completion_hub.hpp"
#include "runtime/database_access.hpp"
#include "runtime/history.hpp"
#include "runtime/host_impl.hpp"
#include "runtime/rewind.hpp"
#include "runtime/utf8.hpp"

namespace durable {

namespace ev = detail::ev;

namespace {

bool is_result(std::string_view t) {
    return t == ev::kTaskCompleted || t == ev::kTaskFailed || t == ev::kTimerFired ||
           t == ev::kSubOrchestrationCompleted || t == ev::kSubOrchestrationFailed;
}

bool is_success(std::string_view t) {
    return t == ev::kTaskCompleted || t == ev::kTimerFired || t == ev::kSubOrchestrationCompleted;
}

class RewindPlanner {
public:
    RewindPlanner(store::Store& store, std::string reason, std::string actor, std::int64_t now)
        : store_(store), reason_(std::move(reason)), actor_(std::move(actor)), now_(now) {}

    // Plans the rewind of `id` and of its failed sub-orchestrations. `top`: the instance the
    // caller named (it must be Failed; a child that is not is left alone).
    void add(const std::string& id, bool top) {
        if (!planned_.insert(id).second) return;
        auto row = store_.get_instance(id);
        if (!row) {
            if (top) throw InstanceNotFound(fmt::format("no instance '{}' (never scheduled, or purged)", id));
            return;
        }
        if (row->status != Status::Failed) {
            if (!top) return;
            throw InvalidInput(fmt::format(
                "instance '{}' is {}: only a Failed instance can be rewound{}", id, to_string(row->status),
                row->status == Status::Completed || row->status == Status::Terminated
                    ? " (Client::restart / `durable restart` runs it again from the start)"
                    : ""));
        }
        auto rows = store_.get_history(id);
        std::vector<Json> events;
        events.reserve(rows.size());
        for (const auto& h : rows) events.push_back(Json::parse(h.event));
        const std::size_t n = events.size();
        std::size_t segment = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (ev::type_of(events[i]) == ev::kExecutionRewound) segment = i + 1;
        }
        const std::size_t from = detail::rewind_start(events, segment, n);
        if (from == n) {
            throw InvalidInput(fmt::format("the history of instance '{}' does not end in its failure; it cannot be "
                                           "rewound (restart it instead)",
                                           id));
        }
        // What replay keeps before the failure point: the tasks scheduled, and which have a result.
        const auto skip = detail::rewound_events(events);
        std::map<std::int64_t, Json> scheduled;
        std::set<std::int64_t> answered;
        for (std::size_t i = 0; i < from; ++i) {
            if (skip[i]) continue;
            auto t = ev::type_of(events[i]);
            auto tid = events[i].value("id", std::int64_t{-1});
            if (ev::is_scheduling(t)) scheduled[tid] = events[i];
            if (is_result(t)) answered.insert(tid);
        }

        store::Rewind rw;
        rw.instance_id = id;
        rw.next_seq = rows.back().seq + 1;
        rw.now = now_;
        Json marker = ev::make(ev::kExecutionRewound, now_);
        marker["reason"] = reason_;
        marker["from"] = rows[from].seq;
        rw.messages.push_back(store::NewMessage{id, now_, true, marker.dump()});
        for (std::size_t i = from; i < n; ++i) {
            const auto& e = events[i];
            auto t = ev::type_of(e);
            auto tid = e.value("id", std::int64_t{-1});
            if (is_success(t) && scheduled.count(tid) && !answered.count(tid)) {
                // Work scheduled before the failure that succeeded after it: kept, not run again.
                rw.messages.push_back(store::NewMessage{id, now_, false, e.dump()});
                answered.insert(tid);
            } else if (t == ev::kEventRaised) {
                rw.messages.push_back(store::NewMessage{id, now_, false, e.dump()});
            } else if (t == ev::kSubOrchestrationFailed && scheduled.count(tid) && !answered.count(tid)) {
                add(scheduled[tid].value("instance", ""), false);
            }
        }
        for (const auto& [tid, e] : scheduled) {
            if (ev::type_of(e) != ev::kTimerCreated || answered.count(tid)) continue;
            auto fire_at = e.value("fire_at", std::int64_t{0});
            Json fired = ev::make(ev::kTimerFired, fire_at);
            fired["id"] = tid;
            fired["x"] = row->execution_id;
            rw.messages.push_back(store::NewMessage{id, fire_at, false, fired.dump()});
        }
        rw.audit = store::AuditEntry{now_, actor_, "rewind", id, reason_.empty() ? std::nullopt : std::optional(reason_)};
        plan_.push_back(std::move(rw));
    }

    std::vector<store::Rewind> take() { return std::move(plan_); }

private:
    store::Store& store_;
    std::string reason_, actor_;
    std::int64_t now_;
    std::set<std::string> planned_;
    std::vector<store::Rewind> plan_;
};

}  // namespace

void Client::rewind(const std::string& id, const std::string& reason) {
    detail::require_utf8(id, "the instance id");
    detail::require_utf8(reason, "the reason");
    auto store = detail::store_of(db_);
    RewindPlanner planner(*store, reason, detail::actor_name(attachment_), detail::wall_ms(db_, attachment_));
    planner.add(id, true);
    auto plan = planner.take();
    std::vector<std::string> ids;
    for (const auto& rw : plan) ids.push_back(rw.instance_id);
    auto r = detail::wait_write([&](store::WriteCallback cb) { store->rewind_instances(std::move(plan), std::move(cb)); });
    if (r.conflict) {
        throw InvalidInput(fmt::format("instance '{}' changed while it was being rewound (rewound by someone else, or "
                                       "purged); look at its status",
                                       id));
    }
    // Waiters of this process may remember them as finished.
    for (const auto& i : ids) detail::DatabaseAccess::completions(db_)->forget(i);
    if (attachment_) {
        if (auto h = attachment_->host.lock()) h->wake_dispatcher();
    }
}

std::string Client::restart(const std::string& id, const RestartOptions& options) {
    auto row = detail::store_of(db_)->get_instance(id);
    if (!row) throw InstanceNotFound(fmt::format("no instance '{}' in {} (never scheduled, or purged)", id, db_.path()));
    ScheduleOptions so;
    if (options.new_id) {
        so.instance_id = new_instance_id();
        so.if_exists = IfExists::Fail;
    } else {
        so.instance_id = id;
        so.if_exists = IfExists::Restart;
    }
    so.version = row->orchestration_version;
    return schedule_with_result(row->name, detail::parse_or(row->input), so).id;
}

}  // namespace durable
