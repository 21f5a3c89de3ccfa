// Episodes: apply an instance's new events to its cached coroutine, then commit everything
// the episode decided in one transaction under the lease CAS.
//
// Commits of one instance are pipelined: the next episode may run while the previous
// commit is in flight, expecting version + 1. The store applies them in order; if one is
// refused (lease lost), every later one is refused too, and the instance is dropped from
// memory. Activities run as soon as their episode ends (covered by the instance lease);
// their results reach history with the next episode, so at worst an activity runs again
// after a crash (at-least-once), never an orchestrator decision twice.
#include <fmt/format.h>

#include "runtime/episode_events.hpp"
#include "runtime/host_impl.hpp"
#include "runtime/tracing_ids.hpp"

namespace durable {

using detail::Decision;
using detail::Execution;
namespace ev = detail::ev;

void Host::Impl::enqueue_locked(const std::shared_ptr<LiveInstance>& inst) {
    if (inst->queued || inst->running || inst->dead || remote_blocked_locked(*inst)) return;
    inst->queued = true;
    ready_.push_back(inst);
    work_cv_.notify_one();
    if (inline_activities_ > 0) activity_cv_.notify_one();  // an episode worker may be busy with an activity
}

void Host::Impl::drop_locked(const std::shared_ptr<LiveInstance>& inst, const char* why) {
    if (inst->dead) return;
    inst->dead = true;
    auto it = instances_.find(inst->id);
    bool current = it != instances_.end() && it->second == inst;
    if (current) instances_.erase(it);
    for (auto row : inst->delivered) delivered_inbox_.erase(row);
    inst->delivered.clear();
    inst->incoming.clear();
    inst->held.clear();
    if (inst->activities_token) inst->activities_token->cancel();  // its running activities stop
    if (inst->step_out) {
        // Its remote step is fenced: a reply that comes later changes nothing.
        inst->step_out = false;
        if (auto* remote = registry->default_orchestrator()) remote->withdraw(inst->id);
    }
    if (inst->reply) {
        if (inst->reply->applied) inst->reply->applied(false, fmt::format("host {} dropped the instance: {}", id, why));
        inst->reply.reset();
    }
    if (!inst->running) inst->exec.reset();
    log->warn("host {}: dropped instance {} from memory: {}", id, inst->id, why);
    // Give the lease up too, orphaned (expired, owner kept) so any host, this one included,
    // takes the instance over at once. Kept, it would be renewed with this host's other leases
    // and the instance would never run again. A no-op where another host holds it now.
    if (current) store->release_leases(id, {inst->id}, true, nullptr);
}

void Host::Impl::episode_worker() {
    mark_episode_worker();
    std::unique_lock lock(mu_);
    for (;;) {
        work_cv_.wait(lock, [&] { return workers_stop_ || !ready_.empty(); });
        if (workers_stop_) return;
        auto inst = std::move(ready_.front());
        ready_.pop_front();
        inst->queued = false;
        if (inst->dead || inst->running) continue;
        run_instance_locked(lock, inst);
        run_inline_activities_locked(lock);
    }
}

void Host::Impl::run_instance_locked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<LiveInstance>& inst) {
    // Self-fencing: no work on an instance whose lease may have run out.
    auto valid_from = std::max(last_renewal_ok_, inst->loaded_at);
    if (lease_timing.fenced(valid_from, clock->steady_now())) {
        drop_locked(inst, "its lease was not renewed in time (self-fenced)");
        return;
    }
    if (remote_blocked_locked(*inst)) return;  // its step's reply brings the next episode
    inst->running = true;
    ++running_episodes_;
    std::deque<Incoming> events;
    if (inst->step_out && !inst->reply) {
        // A step is out: only control events now; the rest wait for the step's reply (the code
        // must see events in the order history records them).
        std::deque<Incoming> rest;
        for (auto& in : inst->incoming) (ev::is_control(ev::type_of(in.event)) ? events : rest).push_back(std::move(in));
        inst->incoming.swap(rest);
    } else {
        events.swap(inst->incoming);
    }
    lock.unlock();
    try {
        run_episode(inst, std::move(events));
    } catch (const std::exception& e) {
        lock.lock();
        log->error("host {}: episode of {} failed inside the runtime: {}", id, inst->id, e.what());
        drop_locked(inst, "the runtime failed while running its episode");
        lock.unlock();
    }
    std::unique_ptr<Execution> graveyard;
    lock.lock();
    inst->running = false;
    --running_episodes_;
    if (inst->dead) {
        graveyard = std::move(inst->exec);
    } else if (!inst->incoming.empty() || inst->needs_episode || inst->reply) {
        enqueue_locked(inst);  // a remote step's reply may have come while this episode ran
    }
    if (graveyard) {
        lock.unlock();
        graveyard.reset();
        lock.lock();
    }
    idle_cv_.notify_all();
}

namespace detail {

AppliedEvents apply_events(Execution& ex, std::deque<Incoming>& events, bool& suspended,
                           std::vector<std::int64_t>& consumed, std::int64_t now) {
    AppliedEvents out;
    for (auto& in : events) {
        auto t = ev::type_of(in.event);
        if (suspended && !ev::is_control(t)) {
            // Suspended: inbox events stay in the inbox (redelivered on resume); in-memory
            // ones wait here.
            if (in.inbox_id >= 0) {
                out.undeliver.push_back(in.inbox_id);
            } else {
                out.hold.push_back(std::move(in));
            }
            continue;
        }
        if (in.inbox_id >= 0) consumed.push_back(in.inbox_id);
        bool continued = ex.state() == Execution::State::ContinuedAsNew;
        if (ex.finished() && !continued) continue;
        if (t == ev::kExecutionSuspended) {
            if (suspended) continue;
            suspended = true;
        } else if (t == ev::kExecutionResumed) {
            if (!suspended) continue;
            suspended = false;
        }
        if (continued) {
            // Arrived after the continue-as-new in this same batch: it belongs to the next
            // generation (raised events, terminate), not to the finished one.
            out.after_continue.push_back(std::move(in.event));
            continue;
        }
        ex.apply_new(std::move(in.event), now);
    }
    return out;
}

}  // namespace detail

Json Host::Impl::start_next_generation(LiveInstance& inst, std::vector<Json>& after_continue, store::Millis now) {
    Execution* ex = inst.exec.get();
    Json input = ex->continue_as_new_input();
    auto carried = ex->carried_events();
    detail::ExecutionInfo info = ex->info();
    info.execution_id = new_instance_id();
    auto next = std::make_unique<Execution>(*registry, info, limits, log);
    Json start = ev::make(ev::kExecutionStarted, now);
    start["name"] = inst.name;
    start["input"] = input;
    if (!info.parent_execution_id.empty()) start["px"] = info.parent_execution_id;
    start["cid"] = info.correlation_id;
    if (!info.trace_parent.empty()) start["tp"] = info.trace_parent;
    if (!info.sampled) start["sampled"] = false;  // the next generation keeps the trace's decision
    next->apply_new(std::move(start), now);
    for (auto& c : carried) next->apply_new(std::move(c), now);
    for (auto& e : after_continue) next->apply_new(std::move(e), now);  // old-generation completions drop
    after_continue.clear();
    std::unique_ptr<Execution> old;
    {
        std::lock_guard lock(mu_);
        old = std::move(inst.exec);
        inst.exec = std::move(next);
        inst.execution_id = info.execution_id;
    }
    old.reset();  // the old generation's frames go; its pending work is abandoned
    return input;
}

void Host::Impl::keep_unapplied_locked(LiveInstance& inst, const std::vector<std::int64_t>& undeliver,
                                       std::deque<Incoming>& hold, bool release_held) {
    for (auto row : undeliver) {
        delivered_inbox_.erase(row);
        reread_inbox_locked(row);
        std::erase(inst.delivered, row);
    }
    for (auto& h : hold) inst.held.push_back(std::move(h));
    if (release_held && !inst.held.empty()) {
        for (auto& h : inst.held) inst.incoming.push_back(std::move(h));
        inst.held.clear();
    }
}

void Host::Impl::note_commit_locked(const std::shared_ptr<LiveInstance>& inst, store::EpisodeCommit& c,
                                    bool reset_history, bool merging, Status new_status,
                                    const detail::EpisodeLocalWork& local, bool terminal) {
    c.first_seq = reset_history ? 0 : inst->next_seq;
    if (merging) {
        c.expected_version = inst->lingering->commit.expected_version;
    } else {
        c.expected_version = inst->version;
        inst->version += 1;
        inst->pending_commits += 1;
    }
    inst->next_seq = c.first_seq + static_cast<std::int64_t>(c.events.size());
    inst->status = new_status;
    inst->needs_episode = false;
    inst->last_active = clock->steady_now();
    for (auto t : local.timers) timers_.push(t);
    dispatch_activities_locked(inst, local.activities);
    // Finished (completed, failed, terminated): what it still runs here is cancelled.
    if (terminal && inst->activities_token) inst->activities_token->cancel();
}

detail::EpisodeOutcome Host::Impl::episode_outcome(const LiveInstance& inst, const detail::Execution& ex, store::Millis now,
                                                  Status status, bool terminal, bool reset_history,
                                                  std::optional<std::string> new_input, const std::vector<Json>& history,
                                                  const std::vector<std::int64_t>& consumed) {
    detail::EpisodeOutcome outcome;
    outcome.instance_id = inst.id;
    outcome.name = inst.name;
    outcome.execution_id = inst.execution_id;
    outcome.parent_id = inst.parent_id;
    outcome.parent_task_id = inst.parent_task_id;
    outcome.parent_execution_id = ex.info().parent_execution_id;
    outcome.correlation_id = ex.info().correlation_id;
    outcome.trace_parent = ex.info().trace_parent;
    outcome.sampled = ex.info().sampled;
    outcome.host_id = id;
    outcome.now = now;
    outcome.lease_ms = lease_ms();
    outcome.status = status;
    outcome.terminal = terminal;
    outcome.reset_history = reset_history;
    outcome.new_input = std::move(new_input);
    outcome.custom_status = ex.custom_status();
    if (terminal) {
        outcome.output = ex.output();
        outcome.error = ex.error();
    }
    outcome.history = &history;
    outcome.consumed_inbox = consumed;
    return outcome;
}

void Host::Impl::run_episode(const std::shared_ptr<LiveInstance>& inst, std::deque<Incoming> events) {
    if (inst->exec->remote()) {
        run_remote_episode(inst, std::move(events));
        return;
    }
    auto started = std::chrono::steady_clock::now();
    const store::Millis now = now_ms();
    Execution* ex = inst->exec.get();
    std::vector<std::int64_t> consumed = std::exchange(inst->consume_first, {});
    std::deque<Incoming> release_held;
    Status status = inst->status;
    bool suspended = status == Status::Suspended;

    auto applied_events = detail::apply_events(*ex, events, suspended, consumed, now);
    auto& undeliver = applied_events.undeliver;
    auto& hold = applied_events.hold;
    auto& after_continue = applied_events.after_continue;

    std::vector<Json> history = ex->take_new_history();
    std::vector<Decision> decisions = ex->take_decisions();
    if (!inst->redispatch_tasks.empty()) {
        // Activities history has scheduled without a result, left by a host that ran them
        // itself: this host does not, so their task rows go in with this commit.
        for (auto& d : inst->redispatch_tasks) decisions.push_back(std::move(d));
        inst->redispatch_tasks.clear();
    }
    bool reset_history = false;
    std::optional<std::string> new_input;

    // A generation that continues as new again before it awaits anything is followed at once
    // by the next (only the last generation's history is committed).
    while (ex->state() == Execution::State::ContinuedAsNew) {
        // A new generation: fresh execution id, empty history, carried events.
        Json input = start_next_generation(*inst, after_continue, now);
        ex = inst->exec.get();
        history = ex->take_new_history();
        decisions = ex->take_decisions();
        reset_history = true;
        new_input = input.dump();
    }

    bool terminal = ex->finished();
    Status new_status = detail::status_of(ex->state(), suspended);
    if (new_status == Status::Pending && !history.empty()) new_status = Status::Running;

    if (history.empty() && consumed.empty() && new_status == inst->status && decisions.empty() && !reset_history) {
        bool flush = false;
        {
            std::lock_guard lock(mu_);
            keep_unapplied_locked(*inst, undeliver, hold, false);
            inst->needs_episode = false;
            inst->last_active = clock->steady_now();
            // Nothing new: a lingering commit goes when it is due (this may be the episode the
            // dispatcher asked for) or when nothing is left that would bring the next episode.
            flush = inst->lingering &&
                    (std::chrono::steady_clock::now() >= inst->lingering->since + options.commit_linger ||
                     (inst->inflight_activities == 0 && inst->incoming.empty()));
        }
        if (flush) flush_lingering(inst);
        return;
    }

    auto outcome = episode_outcome(*inst, *ex, now, new_status, terminal, reset_history, std::move(new_input), history,
                                   consumed);
    auto plan = detail::build_episode_commit(outcome, std::move(decisions), local_code, [] { return new_instance_id(); });
    store::EpisodeCommit& c = plan.commit;
    c.orchestration_version = std::exchange(inst->pin_version, std::nullopt);
    auto& adopt = plan.local.adopt;
    auto& timers = plan.local.timers;

    // A lingering commit of this instance (held for this episode) is merged into this one:
    // both go under its CAS, as one version step. Continue-as-new rewrites history from seq 0:
    // the lingering commit then goes first, on its own.
    if (inst->lingering && reset_history) flush_lingering(inst);
    const bool merging = inst->lingering.has_value();
    bool more_coming = false;
    {
        std::lock_guard lock(mu_);
        keep_unapplied_locked(*inst, undeliver, hold, !suspended);
        note_commit_locked(inst, c, reset_history, merging, new_status, plan.local, terminal);
        more_coming = inst->inflight_activities > 0 || !inst->incoming.empty();
    }
    if (!timers.empty()) wake_dispatcher();
    m_episodes.inc();
    // Linger due times are real monotonic time (the dispatcher sleeps until them); lease
    // decisions use the host's clock (lease_timing).
    auto ended = std::chrono::steady_clock::now();
    auto took = ended - started;
    h_episode.observe(std::chrono::duration<double>(took).count());
    if (options.span_sink && ex->info().sampled) {
        trace_episode(ex->info(), took, new_status, terminal, new_status == Status::Failed ? ex->error().dump() : std::string());
    }

    // Watchers see events through the store's change feed (Database::events()), once durable.
    PendingCommit p{std::move(c), std::move(consumed), terminal, new_status, std::move(adopt), ended};
    if (merging) {
        PendingCommit merged = std::move(*inst->lingering);
        inst->lingering.reset();
        detail::merge_pending(merged, std::move(p));
        p = std::move(merged);
    }
    // Linger only while this host's activities of the instance still run (they bring the next
    // episode), for nothing anyone waits on, and not past the linger time.
    const auto& pc = p.commit;
    bool linger = more_coming && !p.terminal && !pc.reset_history && pc.messages.empty() &&
                  pc.new_instances.empty() && pc.tasks.empty() && pc.audit.empty() &&
                  options.commit_linger.count() > 0 && ended < p.since + options.commit_linger;
    if (!linger) {
        submit_commit(inst, std::move(p), merging);
        return;
    }
    auto due = p.since + options.commit_linger;
    inst->lingering = std::move(p);
    std::lock_guard lock(mu_);
    if (inst->dead) return;  // dropped meanwhile: the commit would be refused anyway
    if (!inst->linger_due) {
        inst->linger_due = due;
        bool first = linger_due_.empty();
        linger_due_.emplace_back(due, inst);
        if (first) {
            linger_replan_ = true;  // the dispatcher plans its next wake-up with it
            dispatch_cv_.notify_one();
        }
    }
}

void Host::Impl::flush_lingering(const std::shared_ptr<LiveInstance>& inst) {
    if (!inst->lingering) return;
    PendingCommit p = std::move(*inst->lingering);
    inst->lingering.reset();
    submit_commit(inst, std::move(p), true);
}

void Host::Impl::submit_commit(const std::shared_ptr<LiveInstance>& inst, PendingCommit p, bool lingered) {
    if (lingered) {
        std::lock_guard lock(mu_);
        inst->linger_due.reset();  // nothing left for the dispatcher to flush
    }
    auto self = shared_from_this();
    auto since = p.since;
    // The episode's thread holds no lock here: it may commit its episode itself when the store
    // is idle (a lone instance's commit then needs no commit-thread wake-up). Not while other
    // episodes wait for this thread (a batch of results came in): their commits would go one
    // at a time behind this one; queued, the commit thread takes them in one transaction.
    bool others_ready;
    {
        std::lock_guard lock(mu_);
        others_ready = !ready_.empty();
    }
    std::optional<store::LeaderCommits> leader;
    if (!others_ready) leader.emplace();
    store->commit_episode(std::move(p.commit), [self, inst, since, consumed = std::move(p.consumed), terminal = p.terminal,
                                                status = p.status,
                                                adopt = std::move(p.adopt)](const store::WriteResult& r) mutable {
        self->h_commit.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
        self->on_committed(inst, r, std::move(consumed), terminal, status, std::move(adopt));
    });
}

std::optional<std::chrono::steady_clock::time_point> Host::Impl::due_lingering_locked(
    std::chrono::steady_clock::time_point now) {
    while (!linger_due_.empty()) {
        auto& [due, weak] = linger_due_.front();
        auto inst = weak.lock();
        if (!inst || inst->dead || !inst->linger_due) {
            linger_due_.pop_front();  // committed or gone meanwhile
            continue;
        }
        if (*inst->linger_due > due) {
            // Committed and lingering again since: due later (a newer entry is behind this one).
            linger_due_.pop_front();
            continue;
        }
        if (due > now) return due;
        inst->needs_episode = true;
        enqueue_locked(inst);
        linger_due_.pop_front();
    }
    return std::nullopt;
}

void Host::Impl::on_committed(const std::shared_ptr<LiveInstance>& inst, const store::WriteResult& r,
                              std::vector<std::int64_t> consumed, bool terminal, Status status,
                              std::vector<std::string> adopt) {
    std::unique_ptr<Execution> graveyard;
    {
        std::lock_guard lock(mu_);
        inst->pending_commits -= 1;
        if (!r.ok) {
            if (r.conflict) {
                m_conflicts.inc();
                drop_locked(inst, "another host holds its lease now (the commit's CAS found a newer version)");
            } else {
                std::string why = "its commit failed";
                try {
                    if (r.error) std::rethrow_exception(r.error);
                } catch (const std::exception& e) {
                    why = fmt::format("its commit failed: {}", e.what());
                }
                drop_locked(inst, why.c_str());
            }
            if (!inst->running && inst->exec) graveyard = std::move(inst->exec);
        } else {
            for (auto row : consumed) {
                consumed_inbox_.push_back(row);  // forgotten by delivered_inbox_ later: see deliver_owned_inbox
                std::erase(inst->delivered, row);
            }
            if (terminal) {
                // The terminal commit deleted the whole inbox, delivered rows included.
                for (auto row : inst->delivered) consumed_inbox_.push_back(row);
                inst->delivered.clear();
                (status == Status::Completed ? m_completed : m_failed).inc();
                auto it = instances_.find(inst->id);
                if (it != instances_.end() && it->second == inst) instances_.erase(it);
                inst->dead = true;
                if (at_capacity_) {
                    at_capacity_ = false;
                    dispatch_requested_ = true;
                    dispatch_cv_.notify_one();
                }
                if (!inst->running) graveyard = std::move(inst->exec);
            }
            for (auto& child : adopt) to_adopt_.push_back(std::move(child));
            if (!adopt.empty()) {
                dispatch_requested_ = true;
                dispatch_cv_.notify_one();
            }
        }
    }
    if (r.ok && terminal) hub->notify(inst->id);
    if (r.ok) hub->notify_progress();
    graveyard.reset();
}

}  // namespace durable
