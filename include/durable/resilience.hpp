// durable/resilience.hpp — retries, circuit breakers and per-attempt timeouts for activities.
//
// A `ResiliencePolicy` says how one kind of call is protected; a `ResiliencePipeline` runs
// calls under it; a `PolicyRegistry` hands out one pipeline (and so one circuit breaker) per
// activity name.
//
// Order inside `ResiliencePipeline::execute`, for every attempt:
//
//     breaker.allow()  ->  fn(token with the attempt's deadline)  ->  breaker.record_*()
//     then, on a transient failure with attempts left: sleep the backoff, next attempt.
//
// That is "timeout inside breaker inside retry", the order Polly and resilience4j recommend:
//   * The timeout is innermost because it bounds one call: a hung call becomes an ordinary
//     failure that the breaker counts and the retry retries. Outside the retry it would be a
//     budget for all attempts, which is the caller's business (activity deadlines).
//   * The breaker is asked before every attempt, not once per execute(), because every
//     attempt is a real call to the dependency: each failure must count toward opening, and
//     once the circuit opens the remaining attempts must stop hammering the dependency.
//   * `CircuitOpen` is never retried: the circuit stays open for `break_duration` (30 s by
//     default), and sleeping that long inside a retry loop would hold a worker while nothing
//     can succeed. The caller sees `CircuitOpen` as is and reschedules. Likewise, when the
//     circuit is open right after a failed attempt (that failure, or concurrent ones, opened
//     it), retrying stops at once and the attempt's own failure is rethrown: a backoff sleep
//     could only end in a refusal, and the real error tells the caller more.
//   * The backoff sleep is `outer.wait_for(clock, delay)`: cancelling the caller's token
//     (a host stopping) ends it at once, and retrying stops with the last failure.
//   * Failures that say nothing about the dependency (non-transient ones, such as
//     `InvalidInput`, or the caller cancelling) are not counted by the breaker, so bad input
//     from one caller cannot open the circuit for everybody.
//
// Time comes from the `Clock` given at construction: deadlines and the breaker's open period
// use `steady_now()`; retry sleeps wait on a condition variable for a SystemClock and use
// `sleep_for()` for any other clock, so a `ManualClock` drives everything in tests with no
// timer thread.
//
// Thread safety: `CancellationToken`, `CircuitBreaker`, `ResiliencePipeline` and
// `PolicyRegistry` are safe to use from any number of threads. Options structs are plain
// values.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>
#include <spdlog/fwd.h>

#include "durable/clock.hpp"
#include "durable/errors.hpp"

namespace durable {

// A call was refused without being made because its circuit breaker is open (or half-open
// with all trial calls taken). Not retried; try again after `half_open_at_ms()`.
class CircuitOpen : public Error {
public:
    CircuitOpen(std::string circuit, std::int64_t half_open_at_ms, const std::string& message);
    // Name of the circuit (the activity name for pipelines from a PolicyRegistry).
    const std::string& circuit() const noexcept { return circuit_; }
    // Wall-clock time (ms since the Unix epoch) at which the circuit lets a trial call through.
    std::int64_t half_open_at_ms() const noexcept { return half_open_at_ms_; }

private:
    std::string circuit_;
    std::int64_t half_open_at_ms_;
};

// Work was abandoned because its `CancellationToken` was cancelled (host shutting down, caller
// gave up). A passed deadline throws `durable::Timeout` instead.
class Cancelled : public Error {
public:
    using Error::Error;
};

// ---------------------------------------------------------------------------------------------
// Cancellation

// A copyable handle on one cancellation state, shared by all its copies: cancelled when
// `cancel()` is called on any copy, when its deadline passes, or when its parent is cancelled.
// The deadline is checked lazily against the clock's `steady_now()` each time it is asked,
// so there is no timer thread and a ManualClock moves it.
class CancellationToken {
public:
    // A token with no deadline; only `cancel()` cancels it.
    CancellationToken();
    // A token that times out when `clock->steady_now()` reaches `deadline`.
    static CancellationToken with_deadline(std::shared_ptr<Clock> clock,
                                           std::chrono::steady_clock::time_point deadline);
    // A token that times out `timeout` after now on `clock`.
    static CancellationToken with_timeout(std::shared_ptr<Clock> clock,
                                          std::chrono::nanoseconds timeout);
    // A new token cancelled when this one is, or at its own `timeout` from now on `clock`.
    CancellationToken child_with_timeout(std::shared_ptr<Clock> clock,
                                         std::chrono::nanoseconds timeout) const;
    // A new token cancelled when this one is; cancelling the child leaves this one alone.
    CancellationToken child() const;

    // True once cancelled, timed out, or the parent is.
    bool cancelled() const;
    // True if a deadline (this token's or a parent's) has passed.
    bool timed_out() const;
    // Throws Cancelled if `cancel()` was called (here or on a parent), else Timeout if a
    // deadline has passed; returns otherwise.
    void throw_if_cancelled() const;
    // Cancels this token and its children; idempotent.
    void cancel();
    // The earliest deadline of this token and its parents, if any.
    std::optional<std::chrono::steady_clock::time_point> deadline() const;
    // Waits `d` on `clock`, or less if the token is cancelled or its deadline comes first;
    // returns true if the whole wait passed uncancelled. On a SystemClock this is a condition
    // variable wait that `cancel()` (here or on any relative) cuts short; any other clock is a
    // test clock and is asked to sleep_for (a ManualClock advances at once).
    bool wait_for(const std::shared_ptr<Clock>& clock, std::chrono::nanoseconds d) const;

private:
    struct State;
    explicit CancellationToken(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------
// Retry

enum class Backoff { Constant, Exponential };

// Delay before retry number `retry` (0 = the first retry, after one failure): the cap is
// `base` for Constant and `base * 2^retry` for Exponential, never more than `max`; with
// `jitter` the delay is `random01 * cap` (full jitter, `random01` in [0, 1)), else the cap.
// Pure and saturating: large `retry` values do not overflow.
std::chrono::milliseconds backoff_delay(Backoff backoff, std::chrono::milliseconds base,
                                        std::chrono::milliseconds max, bool jitter, int retry,
                                        double random01);

// The default transience test: every failure is transient except InvalidInput (the same
// input will fail again), CircuitOpen (retrying cannot beat the break duration) and
// Cancelled (someone asked to stop).
bool default_is_transient(const std::exception_ptr& error);

struct RetryOptions {
    // Calls in total, the first included; 1 means no retry.
    int max_attempts = 3;
    std::chrono::milliseconds base_delay{100};
    std::chrono::milliseconds max_delay{5000};
    Backoff backoff = Backoff::Exponential;
    // Full jitter: the delay is uniform in [0, cap) rather than the cap itself.
    bool jitter = true;
    // Whether a failure is worth retrying (and worth counting against the circuit breaker).
    std::function<bool(const std::exception_ptr&)> is_transient = default_is_transient;
    // Seed of the jitter's random generator; 0 seeds it from std::random_device.
    std::uint64_t seed = 0;
};

// `backoff_delay` with the options' settings.
std::chrono::milliseconds retry_delay(const RetryOptions& options, int retry, double random01);

// ---------------------------------------------------------------------------------------------
// Counters

// Plain-number snapshot of resilience counters, for metrics.
struct ResilienceStats {
    std::uint64_t retries = 0;              // attempts made after a failed one
    std::uint64_t breaker_opened = 0;       // transitions to Open
    std::uint64_t breaker_half_opened = 0;  // transitions to HalfOpen
    std::uint64_t breaker_closed = 0;       // transitions from HalfOpen to Closed
    std::uint64_t timeouts = 0;             // attempts that ended after their deadline
    std::uint64_t rejected_by_breaker = 0;  // calls refused with CircuitOpen

    ResilienceStats& operator+=(const ResilienceStats& other);
};

// ---------------------------------------------------------------------------------------------
// Circuit breaker

struct CircuitBreakerOptions {
    // Consecutive failures that open the circuit; 0 disables this trigger.
    int failure_threshold = 5;
    // Share of failed calls in the sliding window that opens the circuit, in (0, 1]; 0
    // disables this trigger. Either trigger opens the circuit.
    double failure_ratio = 0.0;
    // Calls the window must hold before `failure_ratio` is judged.
    int minimum_calls = 10;
    // Length of the sliding window. It is kept as 10 buckets, so a call leaves it between
    // 0.9 and 1.0 window after it was made.
    std::chrono::milliseconds window{std::chrono::seconds(30)};
    // How long the circuit stays open before letting trial calls through.
    std::chrono::milliseconds break_duration{std::chrono::seconds(30)};
    // Trial calls let through at once while half-open.
    int half_open_max_calls = 1;
    // Successful trial calls that close the circuit; any failed trial call re-opens it.
    int success_threshold = 1;
};

// Counts the outcomes of calls to one dependency and refuses calls while the dependency looks
// down. Closed: calls pass, failures are counted. Open: calls are refused until
// `break_duration` has passed. HalfOpen: up to `half_open_max_calls` trial calls pass;
// `success_threshold` successes close the circuit, one failure re-opens it.
// Every `allow()` that returns true must be followed by one `record_*` call.
class CircuitBreaker {
public:
    enum class State { Closed, Open, HalfOpen };

    // Throws InvalidInput if the options make no sense. A null logger means spdlog's default.
    CircuitBreaker(std::string name, CircuitBreakerOptions options,
                   std::shared_ptr<Clock> clock = SystemClock::instance(),
                   std::shared_ptr<spdlog::logger> logger = nullptr);
    CircuitBreaker(const CircuitBreaker&) = delete;
    CircuitBreaker& operator=(const CircuitBreaker&) = delete;

    // Asks to make one call: true if it may proceed, false if it is refused (counted).
    bool allow();
    // Like allow(), but throws CircuitOpen, naming the circuit and when it half-opens.
    void allow_or_throw();
    // Reports that an allowed call succeeded.
    void record_success();
    // Reports that an allowed call failed because of the dependency.
    void record_failure();
    // Reports that an allowed call ended in a way that says nothing about the dependency
    // (bad input, cancelled); frees its trial slot without counting.
    void record_ignored();
    // The current state; an Open circuit whose break has passed reports HalfOpen.
    State state() const;
    const std::string& name() const { return name_; }
    // Transition and rejection counters (retries and timeouts stay 0).
    ResilienceStats stats() const;

private:
    struct Bucket {
        std::int64_t index = -1;
        std::uint32_t calls = 0;
        std::uint32_t failures = 0;
    };
    static constexpr int kBuckets = 10;

    bool allow_locked(std::int64_t* half_open_at_ms);
    void maybe_half_open_locked();
    void add_to_window_locked(bool failed);
    void open_locked(std::string reason);
    void close_locked();
    std::int64_t half_open_at_ms_locked() const;

    const std::string name_;
    const CircuitBreakerOptions options_;
    const std::shared_ptr<Clock> clock_;
    const std::shared_ptr<spdlog::logger> logger_;
    const std::chrono::nanoseconds bucket_width_;

    mutable std::mutex mu_;
    State state_ = State::Closed;                          // guarded by mu_
    int consecutive_failures_ = 0;                         // guarded by mu_
    std::array<Bucket, kBuckets> buckets_{};               // guarded by mu_
    std::chrono::steady_clock::time_point open_until_{};   // guarded by mu_
    std::string open_reason_;                              // guarded by mu_
    int trials_in_flight_ = 0;                             // guarded by mu_
    int trial_successes_ = 0;                              // guarded by mu_
    ResilienceStats stats_;                                // guarded by mu_
};

// ---------------------------------------------------------------------------------------------
// Pipelines

// How one kind of call is protected; each part is optional. An empty policy runs the call
// once, unprotected.
struct ResiliencePolicy {
    std::optional<RetryOptions> retry;
    std::optional<CircuitBreakerOptions> breaker;
    // Deadline of each attempt, given to the call through its CancellationToken.
    std::optional<std::chrono::milliseconds> attempt_timeout;
};

// Runs calls under one policy, with one circuit breaker shared by all of them. See the file
// comment for the order of retry, breaker and timeout.
class ResiliencePipeline {
public:
    // The call: gets a token carrying the attempt's deadline (poll it in long work) and the
    // attempt number, 1 for the first call.
    using Attempt = std::function<nlohmann::json(const CancellationToken& token, int attempt)>;

    // Throws InvalidInput if the policy makes no sense. A null logger means spdlog's default.
    ResiliencePipeline(std::string name, ResiliencePolicy policy,
                       std::shared_ptr<Clock> clock = SystemClock::instance(),
                       std::shared_ptr<spdlog::logger> logger = nullptr);
    ResiliencePipeline(const ResiliencePipeline&) = delete;
    ResiliencePipeline& operator=(const ResiliencePipeline&) = delete;

    // Runs `fn` until it succeeds, a failure is not transient, attempts run out, the circuit
    // refuses it or `outer` is cancelled; returns its result or rethrows the last failure
    // (CircuitOpen as is). An attempt that returns after its deadline fails with Timeout.
    nlohmann::json execute(const Attempt& fn,
                           const CancellationToken& outer = CancellationToken());

    // execute() for a call returning any type (or void).
    template <class F>
    auto run(F&& fn, const CancellationToken& outer = CancellationToken());

    const std::string& name() const { return name_; }
    const ResiliencePolicy& policy() const { return policy_; }
    // The circuit breaker, or null if the policy has none.
    CircuitBreaker* breaker() { return breaker_.get(); }
    const CircuitBreaker* breaker() const { return breaker_.get(); }
    // Counters of this pipeline and its breaker.
    ResilienceStats stats() const;

private:
    double next_random();

    const std::string name_;
    const ResiliencePolicy policy_;
    const std::shared_ptr<Clock> clock_;
    const std::shared_ptr<spdlog::logger> logger_;
    const std::unique_ptr<CircuitBreaker> breaker_;

    std::mutex rng_mu_;
    std::mt19937_64 rng_;  // guarded by rng_mu_
    std::atomic<std::uint64_t> retries_{0};
    std::atomic<std::uint64_t> timeouts_{0};
};

// A default policy plus per-name overrides, and one lazily created pipeline per name, so
// every activity gets its own circuit breaker.
class PolicyRegistry {
public:
    // A null logger means spdlog's default.
    explicit PolicyRegistry(ResiliencePolicy default_policy = {},
                            std::shared_ptr<Clock> clock = SystemClock::instance(),
                            std::shared_ptr<spdlog::logger> logger = nullptr);
    PolicyRegistry(const PolicyRegistry&) = delete;
    PolicyRegistry& operator=(const PolicyRegistry&) = delete;

    // Sets the policy of `name`. Configure before use: throws InvalidInput if the pipeline of
    // `name` already exists, since running calls could not see the change.
    void set_policy(const std::string& name, ResiliencePolicy policy);
    // The policy `name` runs under: its override, else the default.
    ResiliencePolicy policy_for(const std::string& name) const;
    // The pipeline of `name`, created on first use; the reference lives as long as the
    // registry.
    ResiliencePipeline& pipeline(const std::string& name);
    // Sum of the counters of every pipeline.
    ResilienceStats stats() const;
    // Calls `fn` with every pipeline created so far, in name order, under the registry's
    // lock (keep `fn` quick; it must not call back into the registry).
    void for_each(const std::function<void(const ResiliencePipeline&)>& fn) const;

private:
    const ResiliencePolicy default_policy_;
    const std::shared_ptr<Clock> clock_;
    const std::shared_ptr<spdlog::logger> logger_;

    mutable std::mutex mu_;
    std::map<std::string, ResiliencePolicy> overrides_;                         // guarded by mu_
    std::map<std::string, std::unique_ptr<ResiliencePipeline>> pipelines_;    // guarded by mu_
};

namespace detail {
// True for a SystemClock, whose sleep_for is a real sleep better done as an interruptible
// condition variable wait; false for test clocks, whose sleep_for moves time instead.
bool waits_in_real_time(const Clock& clock);
}  // namespace detail

// ---------------------------------------------------------------------------------------------

template <class F>
auto ResiliencePipeline::run(F&& fn, const CancellationToken& outer) {
    using R = std::remove_cvref_t<std::invoke_result_t<F&, const CancellationToken&, int>>;
    if constexpr (std::is_void_v<R>) {
        execute(
            [&fn](const CancellationToken& token, int attempt) {
                fn(token, attempt);
                return nlohmann::json();
            },
            outer);
    } else {
        // Each attempt overwrites the slot; execute() returns only after an attempt that
        // succeeded, so the slot then holds that attempt's value.
        std::optional<R> result;
        execute(
            [&fn, &result](const CancellationToken& token, int attempt) {
                result.reset();
                result.emplace(fn(token, attempt));
                return nlohmann::json();
            },
            outer);
        return R(std::move(*result));
    }
}

}  // namespace durable
