// runtime/execution.hpp — one execution of one orchestration instance, in memory.
//
// An Execution owns the orchestrator coroutine and every frame it spawned. It is fed
// history events: first the recorded ones (replay), then new ones (live). Each event
// resumes whatever awaited it; the code's new decisions (activities, timers,
// sub-orchestrations, sent events) become new history events and Decisions the host acts
// on. During replay each decision must match the recorded one with the same task id (type
// and name); a mismatch makes the execution Failed with a NonDeterminism error naming the
// history index, what history holds and what the code asked for, and how to change code
// safely (versions, patches). Patch markers (ctx.patched) are answered from history while the
// code reproduces recorded events and recorded anew beyond them; events a rewind left out
// (runtime/rewind.hpp) are skipped.
//
// An orchestration with no C++ code on a host whose registry has a default orchestrator
// (remote_orchestrator.hpp) runs in remote mode: no coroutine; the execution keeps the
// history of its generation, says when a step is due (events the code has not seen) and
// applies the code's answer (apply_remote) as the coroutine's decisions would be.
//
// Not thread-safe: one thread at a time (the host's episode worker).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <spdlog/logger.h>
#include <string>
#include <unordered_map>
#include <vector>

#include "durable/context.hpp"
#include "durable/registry.hpp"
#include "durable/remote_orchestrator.hpp"
#include "runtime/failure.hpp"
#include "runtime/history.hpp"

namespace durable::detail {

struct Decision {
    enum class Kind { Activity, Timer, SubOrchestration, SendEvent };
    Kind kind = Kind::Activity;
    std::int64_t id = 0;
    std::string name;             // activity / orchestration / event name
    Json input;
    std::int64_t fire_at = 0;     // timers
    std::string target;           // sub-orchestration instance id, or event target
};

struct ExecutionLimits {
    std::size_t max_history_events = 100'000;
    std::size_t suggest_continue_as_new_at = 10'000;
    std::size_t max_payload_bytes = 256 * 1024;
};

struct ExecutionInfo {
    std::string instance_id, name, execution_id;
    std::optional<std::string> parent_id;
    std::int64_t parent_task_id = -1;
    std::string parent_execution_id;  // from the start event
    std::string correlation_id;       // from the start event; default the instance id
    std::string trace_parent;         // W3C traceparent from the start event ("tp"); may be empty
    bool sampled = true;              // its spans are recorded (the decision the start event carries)
    std::int64_t started_at_ms = 0;   // the start event's time
    std::string version;              // the orchestration version the instance runs ("" unversioned)
};

// Appended to every non-determinism message: what to do instead of changing code in place.
extern const char* const kChangeCodeAdvice;

class Execution final : public FrameOwner {
public:
    enum class State { NotStarted, Running, Completed, Failed, Terminated, ContinuedAsNew };

    Execution(const Registry& registry, ExecutionInfo info, ExecutionLimits limits,
              std::shared_ptr<spdlog::logger> log);
    ~Execution() override;
    Execution(const Execution&) = delete;
    Execution& operator=(const Execution&) = delete;

    // Re-runs recorded history. Afterwards `take_redispatch()` lists activities recorded as
    // scheduled that have no result yet. A mismatch leaves the execution Failed. The last
    // `new_tail` events are not in the store yet (a rewind marker from the inbox): they are
    // replayed as the others and join the episode's new history. Events a rewind left out
    // (runtime/rewind.hpp) are skipped.
    void replay(const std::vector<Json>& history, std::size_t new_tail = 0);
    // Applies a new event; it joins the episode's new history (if it belongs here).
    void apply_new(Json event, std::int64_t now_ms);
    // Fails the execution now (poison, a host-side limit), recording why.
    void fail_now(std::string_view type, const std::string& message) {
        if (!finished()) fail(type, message);
    }

    State state() const { return state_; }
    bool finished() const { return state_ != State::NotStarted && state_ != State::Running; }
    const ExecutionInfo& info() const { return info_; }
    const Json& output() const { return output_; }
    const Json& error() const { return error_; }
    const Json& continue_as_new_input() const { return can_input_; }
    // Events raised but not yet awaited, carried into the next generation on continue-as-new.
    std::vector<Json> carried_events() const;
    const std::optional<Json>& custom_status() const { return custom_status_; }
    bool suspended() const { return suspended_; }
    std::size_t history_size() const { return history_size_; }
    bool has_new_history() const { return !new_history_.empty(); }

    // The episode's output so far, handed over and cleared.
    std::vector<Json> take_new_history();
    std::vector<Decision> take_decisions();
    std::vector<Decision> take_redispatch();

    // ---- remote mode ----
    bool remote() const { return remote_; }
    // The step to send now, if the code has not seen every event that matters to it (or this
    // execution was rebuilt from history on this host, so nothing tells what it has seen).
    // Marks the events as seen.
    std::optional<RemoteStep> take_remote_step(std::int64_t now_ms);
    bool remote_step_due() const;
    // The step sent last got no answer (the executor gave it up): the next one goes regardless.
    void resend_remote_step() { remote_resync_ = remote_; }
    // Applies the code's answer at `now_ms`: its scheduling events join history and become
    // decisions; its end ends the execution. An answer that contradicts history fails the
    // execution with a NonDeterminism error.
    void apply_remote(const RemoteDecisions& d, std::int64_t now_ms);

    // ---- FrameOwner ----
    void adopt(std::coroutine_handle<> frame) override;
    void release(std::coroutine_handle<> frame) override;

    // ---- what OrchestrationContext calls ----
    bool is_replaying() const { return replaying_; }
    std::int64_t now_ms() const { return now_ms_; }
    std::string new_uuid();
    bool continue_as_new_suggested() const { return history_size_ >= limits_.suggest_continue_as_new_at; }
    void schedule(Decision d, std::shared_ptr<StateBase> state);
    void wait_event(const std::string& name, std::shared_ptr<StateBase> state);
    void cancel_event_wait(const std::string& name, const std::shared_ptr<StateBase>& state);
    void request_continue_as_new(Json input, bool keep_events);
    void set_custom_status(Json status);
    bool patched(const std::string& patch);
    void deprecate_patch(const std::string& patch);
    spdlog::logger& log() { return *log_; }
    std::size_t max_payload_bytes() const { return limits_.max_payload_bytes; }

private:
    void process(const Json& e, bool recorded, std::size_t index);
    void start(const Json& e);
    void resolve(std::int64_t id, const Json& e, bool failed, bool recorded, std::size_t index);
    void deliver_event(const Json& e);
    void on_root_done();
    void fail(std::string_view type, const std::string& message);
    void fail_with(Json error);  // error: a failure record (runtime/failure.hpp)
    void complete_with(Json output);  // ExecutionCompleted, or PayloadTooLarge when the output is over the limit
    void terminate(const Json& reason);
    void destroy_frames();
    void record(Json e);
    // Mid-replay: the code has recorded events still to reproduce (inputs it has not been
    // given yet, or decisions it made after the last input). Beyond them it runs for the
    // first time.
    bool within_recorded() const {
        return replaying_ && (replay_index_ < last_input_ || (replay_index_ == last_input_ && outputs_after_last_input_));
    }

    const Registry& registry_;
    ExecutionInfo info_;
    ExecutionLimits limits_;
    std::shared_ptr<spdlog::logger> log_;
    OrchestrationContext ctx_;
    Task<Json> root_;

    State state_ = State::NotStarted;
    bool replaying_ = false;
    bool suspended_ = false;
    std::int64_t now_ms_ = 0;
    std::int64_t next_id_ = 0;
    std::uint64_t uuid_counter_ = 0;
    std::size_t history_size_ = 0;

    struct Pending {
        Decision::Kind kind;
        std::string name;
        std::shared_ptr<StateBase> state;
        bool recorded = false;  // the scheduling event is in history already
        Json input;
        std::string target;     // a sub-orchestration's instance id
    };
    std::map<std::int64_t, Pending> pending_;                 // scheduled, awaiting a result
    std::unordered_map<std::int64_t, Json> recorded_;         // replay: scheduling events by id
    std::map<std::string, std::deque<std::shared_ptr<StateBase>>> event_waiters_;
    std::map<std::string, std::deque<Json>> event_buffer_;
    std::vector<Json> buffered_order_;                        // raised-but-unawaited, in arrival order

    std::vector<Json> new_history_;
    std::vector<Decision> decisions_;
    Json output_, error_, can_input_;
    bool can_requested_ = false, can_keep_events_ = true;
    std::optional<Json> custom_status_;

    std::unordered_map<void*, std::uint64_t> frames_;  // live frames by address, creation order
    std::uint64_t frame_counter_ = 0;
    std::optional<std::string> nondeterminism_;

    // Patches: each id's answer once asked (ctx.patched), the markers history holds, and the
    // ids the code declared deprecated (their markers may stay in history unasked).
    std::map<std::string, bool> patches_;
    std::set<std::string> recorded_patches_, deprecated_patches_;
    std::size_t replay_index_ = 0, last_input_ = 0;  // during replay
    bool outputs_after_last_input_ = false;

    // remote mode
    bool remote_ = false;
    std::vector<Json> remote_history_;                    // the generation's history, in order
    std::size_t remote_seen_ = 0;                         // of it, what the code has seen
    bool remote_resync_ = false;                          // rebuilt here: the next step goes regardless
    std::unordered_map<std::int64_t, std::string> remote_ids_;  // task id -> its scheduling event type
    std::vector<Json> remote_carry_;                      // continue-as-new: the code's carried events
};

}  // namespace durable::detail
