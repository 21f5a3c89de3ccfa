// One orchestration execution in memory: replay, live events, decisions, non-determinism.
#include "runtime/execution.hpp"

#include <algorithm>
#include <fmt/format.h>

#include "durable/history.hpp"
#include "runtime/failure.hpp"
#include "runtime/rewind.hpp"
#include "runtime/tracing_ids.hpp"

namespace durable::detail {
namespace {

// Sets the thread's frame owner for the duration of a resumption.
class OwnerScope {
public:
    explicit OwnerScope(FrameOwner* owner) : previous_(exchange_current_frame_owner(owner)) {}
    ~OwnerScope() { exchange_current_frame_owner(previous_); }

private:
    FrameOwner* previous_;
};

std::string_view scheduling_type(Decision::Kind k) {
    switch (k) {
        case Decision::Kind::Activity: return ev::kTaskScheduled;
        case Decision::Kind::Timer: return ev::kTimerCreated;
        case Decision::Kind::SubOrchestration: return ev::kSubOrchestrationCreated;
        case Decision::Kind::SendEvent: return ev::kEventSent;
    }
    return {};
}

std::string describe_decision(std::string_view type, const std::string& name) {
    return name.empty() ? std::string(type) : fmt::format("{} '{}'", type, name);
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

}  // namespace

const char* const kChangeCodeAdvice =
    "To change the code of running orchestrations, register the changed code as a new version "
    "(Registry::add_orchestrator(name, fn, {.version = \"2\"}): instances finish on the version they "
    "started with) or guard the change with ctx.patched(\"change-id\") so that old histories replay the old path";

Execution::Execution(const Registry& registry, ExecutionInfo info, ExecutionLimits limits,
                     std::shared_ptr<spdlog::logger> log)
    : registry_(registry), info_(std::move(info)), limits_(limits), log_(std::move(log)), ctx_(*this) {
    remote_ = registry_.orchestrator(info_.name) == nullptr && registry_.default_orchestrator() != nullptr;
}

Execution::~Execution() {
    destroy_frames();
}

void Execution::destroy_frames() {
    std::vector<std::pair<std::uint64_t, void*>> frames;
    frames.reserve(frames_.size());
    for (auto& [addr, order] : frames_) frames.emplace_back(order, addr);
    frames_.clear();
    // Newest first: children before the frames that awaited them.
    std::sort(frames.begin(), frames.end(), [](auto& a, auto& b) { return a.first > b.first; });
    OwnerScope scope(this);
    for (auto& f : frames) std::coroutine_handle<>::from_address(f.second).destroy();
}

void Execution::adopt(std::coroutine_handle<> frame) {
    frames_.emplace(frame.address(), frame_counter_++);
}

void Execution::release(std::coroutine_handle<> frame) {
    frames_.erase(frame.address());
}

void Execution::replay(const std::vector<Json>& history, std::size_t new_tail) {
    OwnerScope scope(this);
    const auto skip = rewound_events(history);
    if (remote_) {
        remote_history_.clear();
        for (std::size_t i = 0; i < history.size(); ++i) {
            if (!skip[i]) remote_history_.push_back(history[i]);
        }
        remote_seen_ = remote_history_.size();
        remote_resync_ = !remote_history_.empty();
    }
    const std::size_t tail_from = history.size() - std::min(new_tail, history.size());
    last_input_ = 0;
    outputs_after_last_input_ = false;
    for (std::size_t i = 0; i < history.size(); ++i) {
        if (skip[i]) continue;
        const auto& e = history[i];
        auto t = ev::type_of(e);
        if (ev::is_scheduling(t) && e.contains("id")) recorded_[e["id"].get<std::int64_t>()] = e;
        if (t == ev::kPatchApplied) recorded_patches_.insert(e.value("patch", ""));
        // What the code made (decisions, markers, its end) against what it was given.
        bool output = ev::is_scheduling(t) || t == ev::kPatchApplied || t == ev::kExecutionCompleted ||
                      t == ev::kContinuedAsNew;
        if (output) {
            outputs_after_last_input_ = true;
        } else if (t != ev::kExecutionRewound) {
            last_input_ = i;
            outputs_after_last_input_ = false;
        }
    }
    // The new tail goes first into the episode's history: decisions the code makes beyond the
    // recorded events (after a rewind, with changed code) follow it.
    for (std::size_t i = tail_from; i < history.size(); ++i) new_history_.push_back(history[i]);
    replaying_ = true;
    for (std::size_t i = 0; i < history.size() && !nondeterminism_; ++i) {
        ++history_size_;
        if (skip[i]) continue;
        replay_index_ = i;
        process(history[i], true, i);
    }
    replaying_ = false;
    recorded_.clear();
    if (nondeterminism_) {
        fail("NonDeterminism", *nondeterminism_);
        return;
    }
    if (state_ == State::Running && root_.is_done()) on_root_done();
}

void Execution::apply_new(Json e, std::int64_t now_ms) {
    if (finished()) return;
    auto x = e.find("x");
    if (x != e.end() && x->is_string() && x->get_ref<const std::string&>() != info_.execution_id) return;
    e["ts"] = now_ms;
    OwnerScope scope(this);
    std::size_t index = history_size_;
    record(e);
    process(e, false, index);
    if (!finished() && history_size_ > limits_.max_history_events) {
        fail("HistoryTooLarge",
             fmt::format("the history of instance '{}' passed {} events; call ctx.continue_as_new() "
                         "periodically (ctx.continue_as_new_suggested() tells when)",
                         info_.instance_id, limits_.max_history_events));
    }
}

void Execution::record(Json e) {
    if (!replaying_) {
        ++history_size_;
        if (remote_) remote_history_.push_back(e);
        new_history_.push_back(std::move(e));
    }
}

void Execution::process(const Json& e, bool recorded, std::size_t index) {
    auto t = ev::type_of(e);
    if (auto ts = e.find("ts"); ts != e.end() && ts->is_number_integer()) now_ms_ = ts->get<std::int64_t>();
    if (remote_) {
        // No code here to check against: the code elsewhere replays what it is sent.
        if (t == ev::kExecutionStarted) {
            start(e);
        } else if (ev::is_scheduling(t)) {
            remote_ids_[e.value("id", std::int64_t{-1})] = std::string(t);
        } else if (t == ev::kExecutionTerminated) {
            terminate(e.value("reason", Json()));
        } else if (t == ev::kExecutionSuspended) {
            suspended_ = true;
        } else if (t == ev::kExecutionResumed) {
            suspended_ = false;
        }
        return;
    }
    if (recorded && state_ != State::Running && t != ev::kExecutionStarted && !ev::is_control(t)) {
        if (root_.is_done() || finished()) {
            nondeterminism_ = fmt::format(
                "history event #{} is {}, but the orchestrator's code had already finished at that point; "
                "the code of '{}' changed since instance '{}' started. {}",
                index, t, info_.name, info_.instance_id, kChangeCodeAdvice);
            return;
        }
    }
    if (t == ev::kExecutionStarted) {
        start(e);
    } else if (t == ev::kPatchApplied) {
        std::string patch = e.value("patch", "");
        if (recorded && !patches_.count(patch) && !deprecated_patches_.count(patch)) {
            nondeterminism_ = fmt::format(
                "history event #{} is PatchApplied '{}', but the code did not call ctx.patched(\"{}\") before that "
                "point: the code of '{}' changed since instance '{}' started. When no instance that ran without the "
                "patch remains, keep ctx.deprecate_patch(\"{}\") where ctx.patched was until no history with its "
                "marker remains either. {}",
                index, patch, patch, info_.name, info_.instance_id, patch, kChangeCodeAdvice);
        }
    } else if (ev::is_scheduling(t)) {
        if (!recorded) return;
        auto id = e.value("id", std::int64_t{-1});
        if (id >= next_id_) {
            nondeterminism_ = fmt::format(
                "history event #{} is {} (task {}), but the code did not schedule it: the code of '{}' "
                "changed since instance '{}' started. {}",
                index, describe_decision(t, e.value("name", "")), id, info_.name, info_.instance_id,
                kChangeCodeAdvice);
        }
    } else if (t == ev::kTaskCompleted || t == ev::kTimerFired || t == ev::kSubOrchestrationCompleted) {
        resolve(e.value("id", std::int64_t{-1}), e, false, recorded, index);
    } else if (t == ev::kTaskFailed || t == ev::kSubOrchestrationFailed) {
        resolve(e.value("id", std::int64_t{-1}), e, true, recorded, index);
    } else if (t == ev::kEventRaised) {
        deliver_event(e);
    } else if (t == ev::kExecutionTerminated) {
        terminate(e.value("reason", Json()));
    } else if (t == ev::kExecutionSuspended) {
        suspended_ = true;
    } else if (t == ev::kExecutionResumed) {
        suspended_ = false;
    }
}

void Execution::start(const Json& e) {
    if (state_ != State::NotStarted) return;
    state_ = State::Running;
    info_.parent_execution_id = e.value("px", "");
    info_.correlation_id = e.value("cid", info_.instance_id);
    info_.trace_parent = e.value("tp", "");
    info_.sampled = detail::execution_sampled(info_.trace_parent, e.value("sampled", true));
    info_.started_at_ms = e.value("ts", std::int64_t{0});
    if (remote_) return;
    const OrchestratorFn* fn = registry_.orchestrator(info_.name, info_.version);
    if (!fn) {
        if (info_.version.empty()) {
            fail("UnknownOrchestration",
                 fmt::format("orchestration '{}' is not registered on this host; register it with "
                             "Registry::add_orchestrator (on every host), or check the name",
                             info_.name));
        } else {
            fail("UnknownOrchestration",
                 fmt::format("version '{}' of orchestration '{}' is not registered on this host; register it with "
                             "Registry::add_orchestrator(name, fn, {{.version = \"{}\"}})",
                             info_.version, info_.name, info_.version));
        }
        return;
    }
    try {
        root_ = (*fn)(ctx_, e.value("input", Json()));
    } catch (...) {
        fail_with(orchestrator_failure_json(std::current_exception()));
        return;
    }
    if (root_.is_done()) {
        on_root_done();
    } else {
        root_.state()->listeners.push_back([this] { on_root_done(); });
    }
}

void Execution::on_root_done() {
    if (state_ != State::Running || replaying_) return;  // after replay, replay() calls again
    auto& s = *root_.state();
    if (s.error) {
        fail_with(orchestrator_failure_json(s.error));
        return;
    }
    if (can_requested_) {
        state_ = State::ContinuedAsNew;
        Json e = ev::make(ev::kContinuedAsNew, now_ms_);
        e["input"] = can_input_;
        record(std::move(e));
        return;
    }
    complete_with(s.value ? *s.value : Json());
}

void Execution::complete_with(Json output) {
    output_ = std::move(output);
    if (output_.dump().size() > limits_.max_payload_bytes) {
        fail("PayloadTooLarge", fmt::format("the output of instance '{}' is larger than the {}-byte limit; return "
                                            "a reference to the data instead of the data",
                                            info_.instance_id, limits_.max_payload_bytes));
        return;
    }
    state_ = State::Completed;
    Json e = ev::make(ev::kExecutionCompleted, now_ms_);
    e["status"] = "Completed";
    e["result"] = output_;
    record(std::move(e));
}

void Execution::fail(std::string_view type, const std::string& message) {
    fail_with(ev::error_json(type, message));
}

void Execution::fail_with(Json error) {
    state_ = State::Failed;
    error_ = std::move(error);
    Json e = ev::make(ev::kExecutionCompleted, now_ms_);
    e["status"] = "Failed";
    e["error"] = error_;
    bool was_replaying = replaying_;
    replaying_ = false;
    record(std::move(e));
    replaying_ = was_replaying;
    log_->warn("[instance {}] [cid {}] failed: {}: {}", info_.instance_id, info_.correlation_id,
               error_.value("type", "Error"), error_.value("message", ""));
}

void Execution::terminate(const Json& reason) {
    if (finished()) return;
    state_ = State::Terminated;
    output_ = reason;
}

void Execution::resolve(std::int64_t id, const Json& e, bool failed, bool recorded, std::size_t index) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
        if (recorded && id >= next_id_) {
            nondeterminism_ = fmt::format(
                "history event #{} is {} for task {}, which the code never scheduled: the code of '{}' changed "
                "since instance '{}' started. {}",
                index, ev::type_of(e), id, info_.name, info_.instance_id, kChangeCodeAdvice);
        }
        return;  // a duplicate or stale completion
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (failed) {
        // The record in history, and which task it was (known from the decision, so replay
        // gives the orchestrator the same details).
        Json err = e.value("error", Json::object());
        FailureDetails f = failure_from_json(err);
        if (p.kind == Decision::Kind::SubOrchestration) {
            // The child's error as a whole is the inner failure; its type stays the type.
            f.inner = std::make_shared<const FailureDetails>(failure_from_json(err));
            f.details.clear();
            f.task_kind = "sub-orchestration";
            f.task_instance_id = p.target;
        } else {
            f.task_kind = "activity";
            f.task_instance_id.clear();
        }
        f.task_name = p.name;
        f.task_id = id;
        p.state->set_error(std::make_exception_ptr(TaskFailed(std::move(f))));
    } else if (p.kind == Decision::Kind::Timer) {
        p.state->set_json(Json());
    } else {
        p.state->set_json(e.value("result", Json()));
    }
}

void Execution::schedule(Decision d, std::shared_ptr<StateBase> state) {
    d.id = next_id_++;
    if (d.kind == Decision::Kind::SubOrchestration && d.target.empty()) {
        // Derived from the parent, its generation and the task id: the same on every replay.
        d.target = fmt::format("{}:{}:{}", info_.instance_id, info_.execution_id.substr(0, 8), d.id);
    }
    auto type = scheduling_type(d.kind);
    if (replaying_) {
        auto it = recorded_.find(d.id);
        if (it != recorded_.end()) {
            auto rtype = ev::type_of(it->second);
            std::string rname = it->second.value("name", "");
            if (rtype != type || rname != d.name) {
                if (!nondeterminism_) {
                    nondeterminism_ = fmt::format(
                        "task {} is {} in history, but the code asked for {}: the code of '{}' changed since "
                        "instance '{}' started. {}",
                        d.id, describe_decision(rtype, rname), describe_decision(type, d.name), info_.name,
                        info_.instance_id, kChangeCodeAdvice);
                }
                state->set_error(std::make_exception_ptr(NonDeterminism(*nondeterminism_)));
                return;
            }
            if (d.kind != Decision::Kind::SendEvent) {
                pending_[d.id] = Pending{d.kind, d.name, std::move(state), true,
                                         d.kind == Decision::Kind::Activity ? d.input : Json(),
                                         it->second.value("instance", d.target)};
            }
            return;
        }
    }
    if (d.input.dump().size() > limits_.max_payload_bytes) {
        state->set_error(std::make_exception_ptr(TaskFailed(
            "PayloadTooLarge",
            fmt::format("the input of {} is larger than the {}-byte limit; pass a reference to the data instead",
                        describe_decision(type, d.name), limits_.max_payload_bytes))));
        return;
    }
    Json e = ev::make(type, now_ms_);
    e["id"] = d.id;
    switch (d.kind) {
        case Decision::Kind::Activity:
            e["name"] = d.name;
            e["input"] = d.input;
            break;
        case Decision::Kind::Timer:
            e["fire_at"] = d.fire_at;
            break;
        case Decision::Kind::SubOrchestration:
            e["name"] = d.name;
            e["instance"] = d.target;
            e["input"] = d.input;
            break;
        case Decision::Kind::SendEvent:
            e["name"] = d.name;
            e["instance"] = d.target;
            e["input"] = d.input;
            break;
    }
    // A decision history does not hold is new, even while replaying: the code went beyond
    // its recorded decisions (after a rewind, with changed code).
    bool was_replaying = replaying_;
    replaying_ = false;
    record(std::move(e));
    replaying_ = was_replaying;
    if (d.kind != Decision::Kind::SendEvent) {
        pending_[d.id] = Pending{d.kind, d.name, std::move(state), false, {}, d.target};
    }
    decisions_.push_back(std::move(d));
}

void Execution::deliver_event(const Json& e) {
    if (remote_) return;  // the code elsewhere keeps its own buffer
    std::string name = e.value("name", "");
    Json input = e.value("input", Json());
    auto it = event_waiters_.find(name);
    if (it != event_waiters_.end() && !it->second.empty()) {
        auto s = it->second.front();
        it->second.pop_front();
        s->set_json(input);
        return;
    }
    buffered_order_.push_back(Json{{"name", name}, {"input", input}});
}

void Execution::wait_event(const std::string& name, std::shared_ptr<StateBase> state) {
    for (auto it = buffered_order_.begin(); it != buffered_order_.end(); ++it) {
        if ((*it)["name"] == name) {
            Json input = (*it)["input"];
            buffered_order_.erase(it);
            state->set_json(input);
            return;
        }
    }
    event_waiters_[name].push_back(std::move(state));
}

void Execution::cancel_event_wait(const std::string& name, const std::shared_ptr<StateBase>& state) {
    auto it = event_waiters_.find(name);
    if (it == event_waiters_.end()) return;
    auto& q = it->second;
    q.erase(std::remove(q.begin(), q.end(), state), q.end());
}

std::vector<Json> Execution::carried_events() const {
    std::vector<Json> out;
    if (remote_) {
        for (const auto& c : remote_carry_) {
            Json e = c;
            e["ts"] = now_ms_;
            e.erase("x");
            out.push_back(std::move(e));
        }
        return out;
    }
    if (!can_keep_events_) return out;
    for (const auto& b : buffered_order_) {
        Json e = ev::make(ev::kEventRaised, now_ms_);
        e["name"] = b["name"];
        e["input"] = b["input"];
        out.push_back(std::move(e));
    }
    return out;
}

void Execution::request_continue_as_new(Json input, bool keep_events) {
    can_requested_ = true;
    can_input_ = std::move(input);
    can_keep_events_ = keep_events;
}

void Execution::set_custom_status(Json status) {
    custom_status_ = std::move(status);
}

std::string Execution::new_uuid() {
    std::string seed = fmt::format("{}/{}/{}", info_.instance_id, info_.execution_id, uuid_counter_++);
    std::uint64_t hi = fnv1a(seed, 14695981039346656037ULL);
    std::uint64_t lo = fnv1a(seed, hi ^ 0x9e3779b97f4a7c15ULL);
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000005000ULL;  // version 5 (name-based)
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                       lo & 0xffffffffffffULL);
}

bool Execution::patched(const std::string& patch) {
    auto it = patches_.find(patch);
    if (it != patches_.end()) return it->second;
    // Replaying recorded events, the marker decides: a history made before the patch has
    // none. Beyond them the code runs for the first time: the patched path, and the marker.
    bool on = within_recorded() ? recorded_patches_.count(patch) > 0 : true;
    patches_[patch] = on;
    if (on && !recorded_patches_.count(patch)) {
        Json e = ev::make(ev::kPatchApplied, now_ms_);
        e["patch"] = patch;
        bool was_replaying = replaying_;
        replaying_ = false;
        record(std::move(e));
        replaying_ = was_replaying;
        recorded_patches_.insert(patch);
    }
    return on;
}

void Execution::deprecate_patch(const std::string& patch) {
    deprecated_patches_.insert(patch);
}

std::vector<Json> Execution::take_new_history() {
    return std::exchange(new_history_, {});
}

std::vector<Decision> Execution::take_decisions() {
    return std::exchange(decisions_, {});
}

std::vector<Decision> Execution::take_redispatch() {
    std::vector<Decision> out;
    if (finished()) return out;
    if (remote_) {
        // Activities history schedules without a result: the code's decisions stand, the
        // calls run again here (at least once).
        std::map<std::int64_t, const Json*> open;
        for (const auto& e : remote_history_) {
            auto t = ev::type_of(e);
            auto id = e.value("id", std::int64_t{-1});
            if (t == ev::kTaskScheduled) {
                open[id] = &e;
            } else if (t == ev::kTaskCompleted || t == ev::kTaskFailed) {
                open.erase(id);
            }
        }
        for (auto& [id, e] : open) {
            Decision d;
            d.kind = Decision::Kind::Activity;
            d.id = id;
            d.name = e->value("name", "");
            d.input = e->value("input", Json());
            out.push_back(std::move(d));
        }
        return out;
    }
    for (auto& [id, p] : pending_) {
        if (p.recorded && p.kind == Decision::Kind::Activity) {
            Decision d;
            d.kind = Decision::Kind::Activity;
            d.id = id;
            d.name = p.name;
            d.input = p.input;
            out.push_back(std::move(d));
        }
    }
    return out;
}

}  // namespace durable::detail

namespace durable::detail {
namespace {

// Events a remote step carries: all but suspend / resume, which the host applies itself
// (a suspended instance gets no step).
bool sent_to_code(std::string_view t) {
    return t != ev::kExecutionSuspended && t != ev::kExecutionResumed && t != ev::kPatchApplied &&
           t != ev::kExecutionRewound;
}

// Events that call for a step: what the code has not decided on yet.
bool needs_decision(std::string_view t) {
    return sent_to_code(t) && !ev::is_scheduling(t) && t != ev::kExecutionCompleted && t != ev::kContinuedAsNew &&
           t != ev::kExecutionTerminated;
}

Decision::Kind kind_of(std::string_view t) {
    if (t == ev::kTaskScheduled) return Decision::Kind::Activity;
    if (t == ev::kTimerCreated) return Decision::Kind::Timer;
    if (t == ev::kSubOrchestrationCreated) return Decision::Kind::SubOrchestration;
    return Decision::Kind::SendEvent;
}

}  // namespace

bool Execution::remote_step_due() const {
    if (!remote_ || state_ != State::Running || suspended_) return false;
    if (remote_resync_) return true;
    for (std::size_t i = remote_seen_; i < remote_history_.size(); ++i) {
        if (needs_decision(ev::type_of(remote_history_[i]))) return true;
    }
    return false;
}

std::optional<RemoteStep> Execution::take_remote_step(std::int64_t now_ms) {
    if (!remote_step_due()) return std::nullopt;
    RemoteStep step;
    step.instance_id = info_.instance_id;
    step.name = info_.name;
    step.execution_id = info_.execution_id;
    step.now_ms = now_ms;
    for (std::size_t i = 0; i < remote_history_.size(); ++i) {
        const auto& e = remote_history_[i];
        if (!sent_to_code(ev::type_of(e))) continue;
        (i < remote_seen_ ? step.past : step.fresh).push_back(e);
    }
    remote_seen_ = remote_history_.size();
    remote_resync_ = false;
    return step;
}

void Execution::apply_remote(const RemoteDecisions& d, std::int64_t now_ms) {
    if (finished()) return;
    now_ms_ = now_ms;
    OwnerScope scope(this);
    for (const auto& s : d.scheduled) {
        auto t = ev::type_of(s);
        std::int64_t id = s.value("id", std::int64_t{-1});
        if (!ev::is_scheduling(t) || id < 0) {
            fail("InvalidAction", fmt::format("the orchestrator's code answered with '{}' (task {}), which is not a "
                                              "scheduling action",
                                              t, id));
            return;
        }
        if (auto it = remote_ids_.find(id); it != remote_ids_.end()) {
            if (it->second == t) continue;  // history has it already
            fail("NonDeterminism",
                 fmt::format("task {} is {} in history, but the code of '{}' asked for {} with that id: the code "
                             "changed since instance '{}' started",
                             id, it->second, info_.name, describe_decision(t, s.value("name", "")), info_.instance_id));
            return;
        }
        Decision dec;
        dec.kind = kind_of(t);
        dec.id = id;
        dec.name = s.value("name", "");
        dec.input = s.value("input", Json());
        dec.fire_at = s.value("fire_at", std::int64_t{0});
        dec.target = s.value("instance", "");
        if (dec.input.dump().size() > limits_.max_payload_bytes) {
            fail("PayloadTooLarge", fmt::format("the input of {} is larger than the {}-byte limit; pass a reference "
                                                "to the data instead",
                                                describe_decision(t, dec.name), limits_.max_payload_bytes));
            return;
        }
        Json e = s;
        e["ts"] = now_ms;
        if (dec.kind == Decision::Kind::SubOrchestration && dec.target.empty()) {
            // Derived from the parent, its generation and the task id, as for C++ code.
            dec.target = fmt::format("{}:{}:{}", info_.instance_id, info_.execution_id.substr(0, 8), dec.id);
            e["instance"] = dec.target;
        }
        remote_ids_[id] = std::string(t);
        record(std::move(e));
        decisions_.push_back(std::move(dec));
    }
    if (d.custom_status) custom_status_ = *d.custom_status;
    switch (d.end) {
        case RemoteDecisions::End::None:
            break;
        case RemoteDecisions::End::Completed:
            complete_with(d.result);
            break;
        case RemoteDecisions::End::Failed:
            fail_with(d.error.is_object() ? d.error : ev::error_json("Error", d.error.dump()));
            break;
        case RemoteDecisions::End::Terminated: {
            Json e = ev::make(ev::kExecutionTerminated, now_ms_);
            e["reason"] = d.terminate_reason;
            record(std::move(e));
            terminate(Json(d.terminate_reason));
            break;
        }
        case RemoteDecisions::End::ContinuedAsNew: {
            can_requested_ = true;
            can_input_ = d.result;
            remote_carry_ = d.carryover;
            state_ = State::ContinuedAsNew;
            Json e = ev::make(ev::kContinuedAsNew, now_ms_);
            e["input"] = can_input_;
            record(std::move(e));
            break;
        }
    }
    if (!finished() && history_size_ > limits_.max_history_events) {
        fail("HistoryTooLarge",
             fmt::format("the history of instance '{}' passed {} events; continue as new periodically",
                         info_.instance_id, limits_.max_history_events));
    }
    // The code's own decisions are known to it: the next step has them in its past events.
    remote_seen_ = remote_history_.size();
}

}  // namespace durable::detail
