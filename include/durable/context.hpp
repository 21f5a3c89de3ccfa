// durable/context.hpp — what orchestrator code may do: OrchestrationContext.
//
// Orchestrator code must be deterministic: it is re-run against its recorded history after
// a restart, an eviction from the host's cache or a takeover by another host, and must make
// the same decisions in the same order. Inside an orchestrator:
//   - do: call activities and sub-orchestrations, create timers, wait for events, use
//     ctx.now() and ctx.new_uuid(), log through ctx.log_info(), keep local state;
//   - don't: do I/O, start threads, read the wall clock, use randomness or global mutable
//     state, or block. Put all of that in activities.
// A history that does not match the code fails the instance with durable::NonDeterminism,
// naming the event, instead of corrupting it.
//
// Compiler notes (GCC 12 coroutine bugs): it miscompiles `co_await` inside the conditional
// operator (`c ? co_await a : b`) and destroys a braced temporary inside a co_await
// expression twice (`co_await ctx.call_activity("x", Req{...})`). Write an if statement, and
// build arguments as named locals first.
//
// Thread safety: a context is used only by the thread running its orchestration.
#pragma once

#include <chrono>
#include <cstdint>
#include <fmt/format.h>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "durable/errors.hpp"
#include "durable/task.hpp"

namespace durable {

using Json = nlohmann::json;

// A durable retry policy: the waits between attempts are durable timers, so a retry
// survives a crash of the host. (In-process retries, fast and lost on a crash, are the
// activity's ResiliencePolicy; see resilience.hpp.)
struct RetryPolicy {
    int max_attempts = 3;                                   // including the first
    std::chrono::milliseconds first_delay{1000};
    double backoff_coefficient = 2.0;
    std::chrono::milliseconds max_delay{std::chrono::minutes(5)};
    std::chrono::milliseconds total_timeout{0};             // 0: no limit
    std::function<bool(const TaskFailed&)> retryable;       // empty: every failure is retried
};

struct ActivityOptions {
    std::optional<RetryPolicy> retry;
};

struct SubOrchestrationOptions {
    std::optional<std::string> instance_id;  // default: derived from the parent's id and the call
    std::optional<RetryPolicy> retry;
};

namespace detail {
class Execution;
}

class OrchestrationContext {
public:
    explicit OrchestrationContext(detail::Execution& exec) : exec_(exec) {}
    OrchestrationContext(const OrchestrationContext&) = delete;
    OrchestrationContext& operator=(const OrchestrationContext&) = delete;

    // The instance's id and orchestration name.
    const std::string& instance_id() const;
    const std::string& name() const;
    // True while the code re-runs decisions already in history.
    bool is_replaying() const;
    // The time of the event being processed: the same on every replay.
    std::chrono::system_clock::time_point now() const;
    // A UUID that is the same on every replay.
    std::string new_uuid();
    // True when history has grown past the host's suggestion: call continue_as_new soon.
    bool continue_as_new_suggested() const;
    // The version of the orchestration's code this instance runs ("" unversioned); see
    // OrchestratorSettings in registry.hpp.
    const std::string& version() const;

    // Patches: a small fix to running code without a new version.
    //   if (ctx.patched("fix-tax-rounding")) { new code } else { old code }
    // True for an execution that reaches this point for the first time (a PatchApplied marker
    // is recorded in its history) or whose history holds the marker; false when replaying a
    // history recorded before the patch, so instances in flight keep the old path. The same
    // answer for every later call with this id in the execution. Ids are any strings; use
    // each for one change.
    bool patched(std::string_view patch_id);
    // Once no instance that ran without the patch remains: remove the old branch and put this
    // where ctx.patched(patch_id) was, so histories that hold the marker still replay. Remove
    // it too when no history with the marker remains.
    void deprecate_patch(std::string_view patch_id);

    // Schedules activity `name` with `input`; its result converts to T.
    template <class T = Json, class I = Json>
    Task<T> call_activity(std::string_view name, const I& input = I{}, const ActivityOptions& options = {}) {
        Json in = input;
        if (options.retry) {
            return retry_loop<T>(*this, *options.retry, [this, n = std::string(name), in]() {
                return call_activity_once<T>(n, in);
            });
        }
        return call_activity_once<T>(std::string(name), std::move(in));
    }

    // Starts orchestration `name` as a child instance and waits for its result.
    template <class T = Json, class I = Json>
    Task<T> call_sub_orchestration(std::string_view name, const I& input = I{},
                                   const SubOrchestrationOptions& options = {}) {
        Json in = input;
        if (options.retry) {
            auto opts = options;
            return retry_loop<T>(*this, *options.retry, [this, n = std::string(name), in, opts]() {
                return call_sub_once<T>(n, in, opts.instance_id);
            });
        }
        return call_sub_once<T>(std::string(name), std::move(in), options.instance_id);
    }

    // A durable timer: completes after `delay` (or at `at`), even across restarts.
    Task<void> create_timer(std::chrono::milliseconds delay);
    Task<void> create_timer(std::chrono::system_clock::time_point at);

    // Waits for an event raised by a client (or another instance) under `name`. Events
    // raised before the wait are buffered in order.
    template <class T = Json>
    Task<T> wait_for_external_event(std::string_view name) {
        auto s = std::make_shared<detail::State<T>>();
        wait_event_impl(std::string(name), s);
        return Task<T>(s);
    }
    // As above, failing with durable::Timeout if no event arrives within `timeout`.
    template <class T = Json>
    Task<T> wait_for_external_event(std::string_view name, std::chrono::milliseconds timeout) {
        return wait_with_timeout<T>(*this, wait_for_external_event<T>(name), create_timer(timeout),
                                    std::string(name), timeout);
    }

    // Raises an event on another instance (fire and forget, recorded once).
    template <class I = Json>
    void send_event(std::string_view instance_id, std::string_view event_name, const I& payload = I{}) {
        send_event_impl(std::string(instance_id), std::string(event_name), Json(payload));
    }

    // Ends this execution and starts a new one of the same instance with `input` and an
    // empty history. Buffered, unprocessed events are carried over when `keep_unprocessed_events`.
    template <class I = Json>
    void continue_as_new(const I& input, bool keep_unprocessed_events = true) {
        continue_as_new_impl(Json(input), keep_unprocessed_events);
    }

    // Sets the custom status clients see (any JSON value).
    template <class S = Json>
    void set_custom_status(const S& status) {
        set_custom_status_impl(Json(status));
    }

    // Logs at info level unless replaying (so each line appears once).
    template <class... A>
    void log_info(fmt::format_string<A...> f, A&&... args) {
        if (!is_replaying()) log_impl(fmt::format(f, std::forward<A>(args)...));
    }

private:
    // Plumbing of the templates above (context.cpp).
    void schedule_activity_impl(std::string name, Json input, std::shared_ptr<detail::StateBase> s);
    void schedule_sub_impl(std::string name, Json input, std::optional<std::string> id,
                           std::shared_ptr<detail::StateBase> s);
    void wait_event_impl(std::string name, std::shared_ptr<detail::StateBase> s);
    void send_event_impl(std::string instance_id, std::string name, Json payload);
    void continue_as_new_impl(Json input, bool keep_events);
    void set_custom_status_impl(Json status);
    void log_impl(const std::string& line);
    static std::chrono::milliseconds retry_delay(const RetryPolicy& p, int attempt);

    template <class T>
    Task<T> call_activity_once(std::string name, Json input) {
        auto s = std::make_shared<detail::State<T>>();
        schedule_activity_impl(std::move(name), std::move(input), s);
        return Task<T>(s);
    }
    template <class T>
    Task<T> call_sub_once(std::string name, Json input, std::optional<std::string> id) {
        auto s = std::make_shared<detail::State<T>>();
        schedule_sub_impl(std::move(name), std::move(input), std::move(id), s);
        return Task<T>(s);
    }

    template <class T>
    static Task<T> retry_loop(OrchestrationContext& ctx, RetryPolicy policy, std::function<Task<T>()> attempt) {
        auto started = ctx.now();
        for (int n = 1;; ++n) {
            bool retry = false;
            try {
                if constexpr (std::is_void_v<T>) {
                    co_await attempt();
                    co_return;
                } else {
                    co_return co_await attempt();
                }
            } catch (const TaskFailed& e) {
                bool out_of_time = policy.total_timeout.count() > 0 &&
                                   ctx.now() - started + retry_delay(policy, n) > policy.total_timeout;
                if (n >= policy.max_attempts || out_of_time || (policy.retryable && !policy.retryable(e))) throw;
                retry = true;
            }
            if (retry) co_await ctx.create_timer(retry_delay(policy, n));
        }
    }

    template <class T>
    static Task<T> wait_with_timeout(OrchestrationContext& ctx, Task<T> event, Task<void> timer, std::string name,
                                     std::chrono::milliseconds timeout) {
        std::size_t winner = co_await when_any(event, timer);
        if (winner == 1) {
            ctx.cancel_event_wait(name, event.state());
            throw Timeout(fmt::format("no event '{}' arrived within {} ms", name, timeout.count()));
        }
        co_return co_await std::move(event);
    }
    void cancel_event_wait(const std::string& name, const std::shared_ptr<detail::StateBase>& s);

    detail::Execution& exec_;
};

}  // namespace durable
