// Episodes of orchestrations whose code is remote (see durable/remote_orchestrator.hpp).
//
// A step goes out when the execution has events its code has not seen; no thread waits for
// it. The episode that sent it does not commit what it applied (the events and their inbox
// rows wait in the execution and in LiveInstance::step_consumed): the episode that applies
// the reply commits them with the code's decisions, in ONE transaction under the lease CAS,
// exactly as a C++ episode commits (build_episode_commit, store::commit_episode, group
// commit). One commit per step on the hot path, as for C++ code.
//
// While a step is out only control events run an episode (a terminate ends the instance and
// withdraws the step; suspend and resume are applied); everything else waits for the reply,
// so history records events in the order the code saw them. A reply whose instance this host
// dropped (lease lost, fenced, stopping) is refused: LiveInstance::reply is cleared by
// drop_locked and a later one finds the instance dead.
#include <fmt/format.h>

#include "runtime/episode_events.hpp"
#include "runtime/host_impl.hpp"
#include "runtime/tracing_ids.hpp"

namespace durable {

using detail::Decision;
using detail::Execution;
namespace ev = detail::ev;

namespace {

using Applied = std::function<void(bool, const std::string&)>;

}  // namespace

bool Host::Impl::remote_blocked_locked(const LiveInstance& inst) const {
    if (!inst.step_out || inst.reply) return false;
    for (const auto& in : inst.incoming) {
        if (ev::is_control(ev::type_of(in.event))) return false;
    }
    return true;
}

std::vector<store::OrchestrationCode> Host::Impl::claim_names() const {
    auto* remote = registry->default_orchestrator();
    if (!remote || !remote->available()) return orchestration_code;
    // Every name, but the names with C++ code here only in the versions registered here: an
    // instance of another version waits for a host that has it, not the remote code.
    std::vector<store::OrchestrationCode> code{store::OrchestrationCode(std::string(store::kAnyName))};
    code.insert(code.end(), orchestration_code.begin(), orchestration_code.end());
    return code;
}

void Host::Impl::send_remote_step(const std::shared_ptr<LiveInstance>& inst) {
    auto* remote = registry->default_orchestrator();
    if (!remote) return;
    std::optional<RemoteStep> step;
    {
        std::lock_guard lock(mu_);
        if (inst->step_out || inst->dead || stopping_) return;
        step = inst->exec->take_remote_step(now_ms());
        if (!step) return;
        inst->step_out = true;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    auto reply = [weak, inst](RemoteReply r) {
        auto self = weak.lock();
        Applied refuse = std::move(r.applied);
        if (self) {
            std::unique_lock lock(self->mu_);
            if (!inst->dead && inst->step_out && !inst->reply) {
                r.applied = std::move(refuse);
                inst->reply = std::move(r);
                self->enqueue_locked(inst);
                return;
            }
        }
        if (refuse) refuse(false, "the instance is no longer worked on by this host (its lease moved, it finished, "
                                  "or the host is stopping)");
    };
    if (!remote->dispatch(std::move(*step), std::move(reply))) {
        // Not taken (stopping): the step goes again to whoever holds the instance next.
        std::lock_guard lock(mu_);
        inst->step_out = false;
        if (inst->exec) inst->exec->resend_remote_step();
    }
}

void Host::Impl::run_remote_episode(const std::shared_ptr<LiveInstance>& inst, std::deque<Incoming> events) {
    auto started = std::chrono::steady_clock::now();
    const store::Millis now = now_ms();
    Execution* ex = inst->exec.get();
    std::optional<RemoteReply> reply;
    {
        std::lock_guard lock(mu_);
        if (inst->reply) {
            reply = std::move(inst->reply);
            inst->reply.reset();
            inst->step_out = false;
        }
    }
    Applied applied;
    bool answered = false;
    if (reply) {
        applied = std::move(reply->applied);
        if (reply->refused) {
            ex->resend_remote_step();
        } else if (ex->finished()) {
            if (applied) applied(false, "the instance finished before the answer came");
            applied = nullptr;
        } else {
            ex->apply_remote(reply->decisions, now);
            answered = true;
        }
    }

    std::vector<std::int64_t> consumed = std::move(inst->step_consumed);
    inst->step_consumed.clear();
    Status status = inst->status;
    bool suspended = status == Status::Suspended;
    auto applied_events = detail::apply_events(*ex, events, suspended, consumed, now);
    auto& undeliver = applied_events.undeliver;
    auto& hold = applied_events.hold;
    auto& after_continue = applied_events.after_continue;

    bool reset_history = false;
    std::optional<std::string> new_input;
    std::vector<Json> history;
    std::vector<Decision> decisions;
    if (ex->state() == Execution::State::ContinuedAsNew) {
        // A new generation: fresh execution id, empty history, the code's carried events and
        // what arrived after the answer.
        history = ex->take_new_history();  // the old generation's: dropped with its history
        Json input = start_next_generation(*inst, after_continue, now);
        ex = inst->exec.get();
        reset_history = true;
        new_input = input.dump();
    }

    const bool terminal = ex->finished();
    Status new_status = detail::status_of(ex->state(), suspended);
    if (new_status == Status::Pending && ex->has_new_history()) new_status = Status::Running;
    const bool step_due = !terminal && ex->remote_step_due();

    // Sending a step and nothing else to write: what this episode applied goes with the reply.
    if (step_due && !answered && !reset_history && inst->redispatch_tasks.empty()) {
        {
            std::lock_guard lock(mu_);
            keep_unapplied_locked(*inst, undeliver, hold, false);
            inst->step_consumed = std::move(consumed);
            inst->status = new_status;  // in memory: suspension and delivery follow it; written with the reply
            inst->needs_episode = false;
            inst->last_active = clock->steady_now();
        }
        send_remote_step(inst);
        return;
    }

    {
        auto more = ex->take_new_history();
        if (reset_history) {
            history = std::move(more);
        } else {
            history.insert(history.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
        }
    }
    decisions = ex->take_decisions();
    for (auto& d : inst->redispatch_tasks) decisions.push_back(std::move(d));
    inst->redispatch_tasks.clear();
    const bool custom_changed = answered && reply->decisions.custom_status.has_value();

    if (history.empty() && consumed.empty() && new_status == inst->status && decisions.empty() && !reset_history &&
        !custom_changed) {
        {
            std::lock_guard lock(mu_);
            keep_unapplied_locked(*inst, undeliver, hold, !suspended);
            inst->needs_episode = false;
            inst->last_active = clock->steady_now();
        }
        if (applied) applied(true, "");  // nothing of it needed writing
        send_remote_step(inst);
        return;
    }

    auto outcome = episode_outcome(*inst, *ex, now, new_status, terminal, reset_history, std::move(new_input), history,
                                   consumed);
    auto plan = detail::build_episode_commit(outcome, std::move(decisions), local_code, [] { return new_instance_id(); });
    store::EpisodeCommit& c = plan.commit;

    // No lingering for remote code: the step's round trip is the batching.
    if (inst->lingering) flush_lingering(inst);
    bool withdraw = false;
    {
        std::lock_guard lock(mu_);
        keep_unapplied_locked(*inst, undeliver, hold, !suspended);
        note_commit_locked(inst, c, reset_history, false, new_status, plan.local, terminal);
        if (terminal) {
            withdraw = inst->step_out;  // terminated while its step was out
            inst->step_out = false;
        }
    }
    if (withdraw) registry->default_orchestrator()->withdraw(inst->id);
    if (!plan.local.timers.empty()) wake_dispatcher();
    m_episodes.inc();
    auto ended = std::chrono::steady_clock::now();
    auto took = ended - started;
    h_episode.observe(std::chrono::duration<double>(took).count());
    if (options.span_sink) {
        trace_episode(ex->info(), took, new_status, terminal,
                      new_status == Status::Failed ? ex->error().dump() : std::string());
    }

    auto self = shared_from_this();
    auto adopt = std::move(plan.local.adopt);
    store->commit_episode(std::move(c), [self, inst, since = ended, consumed = std::move(consumed), terminal,
                                         status = new_status, adopt = std::move(adopt),
                                         applied = std::move(applied)](const store::WriteResult& r) mutable {
        self->h_commit.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
        self->on_committed(inst, r, std::move(consumed), terminal, status, std::move(adopt));
        if (applied) {
            applied(r.ok, r.ok ? std::string()
                               : r.conflict ? std::string("another host holds the instance's lease now; the answer "
                                                          "was not recorded")
                                            : std::string("the commit failed; the answer was not recorded"));
        }
    });
    if (!terminal) send_remote_step(inst);
}

}  // namespace durable
