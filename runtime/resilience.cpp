// Retries, circuit breakers and per-attempt timeouts; see durable/resilience.hpp for the
// order they run in and why.
#include "durable/resilience.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <limits>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/failure.hpp"

namespace durable {

namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

std::shared_ptr<spdlog::logger> or_default(std::shared_ptr<spdlog::logger> logger) {
    return logger ? std::move(logger) : spdlog::default_logger();
}

std::shared_ptr<Clock> or_system(std::shared_ptr<Clock> clock) {
    return clock ? std::move(clock) : SystemClock::instance();
}

// "2023-11-14T22:13:20.000Z" for a wall-clock time in ms since the Unix epoch.
std::string iso_utc(std::int64_t ms) {
    const std::int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    const auto millis = static_cast<int>(ms - seconds * 1000);
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z",
                       fmt::gmtime(static_cast<std::time_t>(seconds)), millis);
}

std::int64_t ceil_ms(nanoseconds d) {
    return std::chrono::ceil<milliseconds>(d).count();
}

void validate(const RetryOptions& o) {
    if (o.max_attempts < 1)
        throw InvalidInput(fmt::format(
            "RetryOptions::max_attempts is {}; it counts the first call, so use 1 or more",
            o.max_attempts));
    if (o.base_delay.count() < 0 || o.max_delay.count() < 0)
        throw InvalidInput("RetryOptions delays must not be negative");
    if (!o.is_transient)
        throw InvalidInput(
            "RetryOptions::is_transient is empty; leave it at default_is_transient or give "
            "a predicate");
}

void validate(const CircuitBreakerOptions& o) {
    if (o.failure_threshold < 0)
        throw InvalidInput("CircuitBreakerOptions::failure_threshold must be 0 (off) or more");
    if (!(o.failure_ratio >= 0.0 && o.failure_ratio <= 1.0))
        throw InvalidInput(fmt::format(
            "CircuitBreakerOptions::failure_ratio is {}; use 0 (off) or a share in (0, 1]",
            o.failure_ratio));
    if (o.failure_ratio > 0.0 && (o.minimum_calls < 1 || o.window.count() <= 0))
        throw InvalidInput(
            "CircuitBreakerOptions with a failure_ratio need minimum_calls >= 1 and a "
            "positive window");
    if (o.break_duration.count() < 0)
        throw InvalidInput("CircuitBreakerOptions::break_duration must not be negative");
    if (o.half_open_max_calls < 1 || o.success_threshold < 1)
        throw InvalidInput(
            "CircuitBreakerOptions::half_open_max_calls and success_threshold must be 1 or more");
}

void validate(const ResiliencePolicy& policy) {
    if (policy.retry) validate(*policy.retry);
    if (policy.breaker) validate(*policy.breaker);
    if (policy.attempt_timeout && policy.attempt_timeout->count() <= 0)
        throw InvalidInput("ResiliencePolicy::attempt_timeout must be positive when set");
}

}  // namespace


// ---------------------------------------------------------------------------------------------
// Errors

CircuitOpen::CircuitOpen(std::string circuit, std::int64_t half_open_at_ms,
                         const std::string& message)
    : Error(message), circuit_(std::move(circuit)), half_open_at_ms_(half_open_at_ms) {}

// ---------------------------------------------------------------------------------------------
// Cancellation

// One per token tree (a root and all its descendants): cancel() anywhere in the tree wakes
// every wait_for in it, and each waiter re-checks its own token.
struct CancellationSignal {
    std::mutex mu;
    std::condition_variable cv;
};

struct CancellationToken::State {
    std::shared_ptr<CancellationSignal> signal;
    std::atomic<bool> cancel_requested{false};
    std::shared_ptr<Clock> clock;          // set iff deadline is
    std::optional<SteadyTime> deadline;
    nanoseconds timeout{0};                // for messages; 0 if given as a deadline
    std::shared_ptr<const State> parent;

    bool deadline_passed() const { return deadline && clock->steady_now() >= *deadline; }
};

CancellationToken::CancellationToken() : state_(std::make_shared<State>()) {
    state_->signal = std::make_shared<CancellationSignal>();
}

CancellationToken::CancellationToken(std::shared_ptr<State> state) : state_(std::move(state)) {}

CancellationToken CancellationToken::with_deadline(std::shared_ptr<Clock> clock,
                                                   SteadyTime deadline) {
    auto state = std::make_shared<State>();
    state->signal = std::make_shared<CancellationSignal>();
    state->clock = or_system(std::move(clock));
    state->deadline = deadline;
    return CancellationToken(std::move(state));
}

CancellationToken CancellationToken::with_timeout(std::shared_ptr<Clock> clock,
                                                  nanoseconds timeout) {
    return CancellationToken().child_with_timeout(std::move(clock), timeout);
}

CancellationToken CancellationToken::child_with_timeout(std::shared_ptr<Clock> clock,
                                                        nanoseconds timeout) const {
    auto state = std::make_shared<State>();
    state->signal = state_->signal;
    state->clock = or_system(std::move(clock));
    state->deadline = state->clock->steady_now() + timeout;
    state->timeout = timeout;
    state->parent = state_;
    return CancellationToken(std::move(state));
}

CancellationToken CancellationToken::child() const {
    auto state = std::make_shared<State>();
    state->signal = state_->signal;
    state->parent = state_;
    return CancellationToken(std::move(state));
}

bool CancellationToken::cancelled() const {
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get())
        if (s->cancel_requested.load(std::memory_order_acquire) || s->deadline_passed())
            return true;
    return false;
}

bool CancellationToken::timed_out() const {
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get())
        if (s->deadline_passed()) return true;
    return false;
}

void CancellationToken::throw_if_cancelled() const {
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get())
        if (s->cancel_requested.load(std::memory_order_acquire))
            throw Cancelled("the operation was cancelled by its caller and abandoned");
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get()) {
        if (!s->deadline_passed()) continue;
        const auto late = s->clock->steady_now() - *s->deadline;
        if (s->timeout.count() > 0)
            throw Timeout(fmt::format(
                "the operation ran past its {} ms timeout (by {} ms) and was abandoned; raise "
                "the timeout or make the work shorter",
                ceil_ms(s->timeout), ceil_ms(late)));
        throw Timeout(fmt::format(
            "the operation ran past its deadline (by {} ms) and was abandoned; allow more "
            "time or make the work shorter",
            ceil_ms(late)));
    }
}

void CancellationToken::cancel() {
    state_->cancel_requested.store(true, std::memory_order_release);
    // Taking the mutex orders the store before any waiter's next predicate check, so a
    // waiter between its check and its wait cannot miss the notification.
    { std::lock_guard lock(state_->signal->mu); }
    state_->signal->cv.notify_all();
}

std::optional<SteadyTime> CancellationToken::deadline() const {
    std::optional<SteadyTime> earliest;
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get())
        if (s->deadline && (!earliest || *s->deadline < *earliest)) earliest = s->deadline;
    return earliest;
}

bool CancellationToken::wait_for(const std::shared_ptr<Clock>& clock, nanoseconds d) const {
    const auto wait_clock = or_system(clock);
    // Stop at the earliest deadline of the chain, measured on the clock that set it.
    for (const State* s = state_.get(); s != nullptr; s = s->parent.get())
        if (s->deadline)
            d = std::min(d, std::max(nanoseconds(0), *s->deadline - s->clock->steady_now()));
    if (cancelled()) return false;
    if (d.count() > 0) {
        if (detail::waits_in_real_time(*wait_clock)) {
            std::unique_lock lock(state_->signal->mu);
            state_->signal->cv.wait_for(lock, d, [this] { return cancelled(); });
        } else {
            wait_clock->sleep_for(d);
        }
    }
    return !cancelled();
}

// ---------------------------------------------------------------------------------------------
// Retry

milliseconds backoff_delay(Backoff backoff, milliseconds base, milliseconds max, bool jitter,
                           int retry, double random01) {
    base = std::max(base, milliseconds(0));
    max = std::max(max, milliseconds(0));
    milliseconds cap = std::min(base, max);
    if (backoff == Backoff::Exponential) {
        // Doubling saturates at `max`, so this loop runs at most ~63 times for any `retry`.
        for (int i = 0; i < retry && cap < max && cap.count() > 0; ++i)
            cap = cap > max / 2 ? max : cap * 2;
    }
    if (!jitter) return cap;
    if (!(random01 > 0.0)) return milliseconds(0);  // also catches NaN
    random01 = std::min(random01, 1.0);
    const auto scaled = static_cast<double>(cap.count()) * random01;
    return std::min(cap, milliseconds(static_cast<milliseconds::rep>(std::floor(scaled))));
}

milliseconds retry_delay(const RetryOptions& options, int retry, double random01) {
    return backoff_delay(options.backoff, options.base_delay, options.max_delay, options.jitter,
                         retry, random01);
}

bool detail::waits_in_real_time(const Clock& clock) {
    return dynamic_cast<const SystemClock*>(&clock) != nullptr;
}

bool default_is_transient(const std::exception_ptr& error) {
    if (!error) return false;
    try {
        std::rethrow_exception(error);
    } catch (const InvalidInput&) {
        return false;
    } catch (const CircuitOpen&) {
        return false;
    } catch (const Cancelled&) {
        return false;
    } catch (...) {
        return true;
    }
}

ResilienceStats& ResilienceStats::operator+=(const ResilienceStats& other) {
    retries += other.retries;
    breaker_opened += other.breaker_opened;
    breaker_half_opened += other.breaker_half_opened;
    breaker_closed += other.breaker_closed;
    timeouts += other.timeouts;
    rejected_by_breaker += other.rejected_by_breaker;
    return *this;
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerOptions options,
                               std::shared_ptr<Clock> clock,
                               std::shared_ptr<spdlog::logger> logger)
    : name_(std::move(name)),
      options_((validate(options), options)),
      clock_(or_system(std::move(clock))),
      logger_(or_default(std::move(logger))),
      bucket_width_(std::max<nanoseconds>(nanoseconds(1), options_.window / kBuckets)) {}

bool CircuitBreaker::allow() {
    std::lock_guard lock(mu_);
    return allow_locked(nullptr);
}

void CircuitBreaker::allow_or_throw() {
    std::lock_guard lock(mu_);
    std::int64_t half_open_at = 0;
    if (allow_locked(&half_open_at)) return;
    if (state_ == State::Open) {
        const auto wait_ms = std::max<std::int64_t>(0, half_open_at - clock_->now_ms());
        throw CircuitOpen(
            name_, half_open_at,
            fmt::format("circuit '{}' is open ({}); calls fail fast until it half-opens in {} ms, "
                        "at {}; retry after that, and check the dependency it protects",
                        name_, open_reason_, wait_ms, iso_utc(half_open_at)));
    }
    throw CircuitOpen(
        name_, half_open_at,
        fmt::format("circuit '{}' is half-open and all {} of its trial calls are in flight; "
                    "calls fail fast until a trial succeeds; retry shortly",
                    name_, options_.half_open_max_calls));
}

bool CircuitBreaker::allow_locked(std::int64_t* half_open_at_ms) {
    maybe_half_open_locked();
    if (state_ == State::Closed) return true;
    if (state_ == State::HalfOpen && trials_in_flight_ < options_.half_open_max_calls) {
        ++trials_in_flight_;
        return true;
    }
    ++stats_.rejected_by_breaker;
    if (half_open_at_ms != nullptr)
        *half_open_at_ms = state_ == State::Open ? half_open_at_ms_locked() : clock_->now_ms();
    return false;
}

void CircuitBreaker::record_success() {
    std::lock_guard lock(mu_);
    switch (state_) {
        case State::Closed:
            consecutive_failures_ = 0;
            add_to_window_locked(false);
            break;
        case State::HalfOpen:
            trials_in_flight_ = std::max(0, trials_in_flight_ - 1);
            if (++trial_successes_ >= options_.success_threshold) close_locked();
            break;
        case State::Open:  // a call allowed before the circuit opened; it changes nothing
            break;
    }
}

void CircuitBreaker::record_failure() {
    std::lock_guard lock(mu_);
    switch (state_) {
        case State::Closed: {
            ++consecutive_failures_;
            add_to_window_locked(true);
            if (options_.failure_threshold > 0 &&
                consecutive_failures_ >= options_.failure_threshold) {
                open_locked(fmt::format("{} consecutive failures", consecutive_failures_));
                break;
            }
            if (options_.failure_ratio > 0.0) {
                const std::int64_t current =
                    clock_->steady_now().time_since_epoch() / bucket_width_;
                std::uint64_t calls = 0, failures = 0;
                for (const Bucket& b : buckets_) {
                    if (b.index > current - kBuckets && b.index <= current) {
                        calls += b.calls;
                        failures += b.failures;
                    }
                }
                if (calls >= static_cast<std::uint64_t>(options_.minimum_calls) &&
                    static_cast<double>(failures) / static_cast<double>(calls) >=
                        options_.failure_ratio) {
                    open_locked(fmt::format("{} of the last {} calls failed within {} ms",
                                            failures, calls, options_.window.count()));
                }
            }
            break;
        }
        case State::HalfOpen:
            trials_in_flight_ = std::max(0, trials_in_flight_ - 1);
            open_locked("a trial call failed while half-open");
            break;
        case State::Open:
            break;
    }
}

void CircuitBreaker::record_ignored() {
    std::lock_guard lock(mu_);
    if (state_ == State::HalfOpen) trials_in_flight_ = std::max(0, trials_in_flight_ - 1);
}

CircuitBreaker::State CircuitBreaker::state() const {
    std::lock_guard lock(mu_);
    if (state_ == State::Open && clock_->steady_now() >= open_until_) return State::HalfOpen;
    return state_;
}

ResilienceStats CircuitBreaker::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void CircuitBreaker::maybe_half_open_locked() {
    if (state_ != State::Open || clock_->steady_now() < open_until_) return;
    state_ = State::HalfOpen;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
    ++stats_.breaker_half_opened;
    logger_->info("circuit '{}' half-open: letting {} trial call(s) through", name_,
                  options_.half_open_max_calls);
}

void CircuitBreaker::add_to_window_locked(bool failed) {
    if (options_.failure_ratio <= 0.0) return;
    const std::int64_t index = clock_->steady_now().time_since_epoch() / bucket_width_;
    Bucket& bucket = buckets_[static_cast<std::size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
    if (bucket.index != index) bucket = Bucket{index, 0, 0};
    ++bucket.calls;
    if (failed) ++bucket.failures;
}

void CircuitBreaker::open_locked(std::string reason) {
    state_ = State::Open;
    open_until_ = clock_->steady_now() + options_.break_duration;
    open_reason_ = std::move(reason);
    consecutive_failures_ = 0;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
    buckets_.fill(Bucket{});
    ++stats_.breaker_opened;
    logger_->warn("circuit '{}' opened after {}; calls fail fast for {} ms", name_, open_reason_,
                  options_.break_duration.count());
}

void CircuitBreaker::close_locked() {
    state_ = State::Closed;
    consecutive_failures_ = 0;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
    buckets_.fill(Bucket{});
    ++stats_.breaker_closed;
    logger_->info("circuit '{}' closed after {} successful trial call(s)", name_,
                  options_.success_threshold);
}

std::int64_t CircuitBreaker::half_open_at_ms_locked() const {
    const auto remaining = std::max(nanoseconds(0), open_until_ - clock_->steady_now());
    return clock_->now_ms() + ceil_ms(remaining);
}

// ---------------------------------------------------------------------------------------------
// Pipeline

ResiliencePipeline::ResiliencePipeline(std::string name, ResiliencePolicy policy,
                                       std::shared_ptr<Clock> clock,
                                       std::shared_ptr<spdlog::logger> logger)
    : name_(std::move(name)),
      policy_((validate(policy), std::move(policy))),
      clock_(or_system(std::move(clock))),
      logger_(or_default(std::move(logger))),
      breaker_(policy_.breaker
                   ? std::make_unique<CircuitBreaker>(name_, *policy_.breaker, clock_, logger_)
                   : nullptr) {
    const std::uint64_t seed = policy_.retry ? policy_.retry->seed : 0;
    if (seed != 0) {
        rng_.seed(seed);
    } else {
        std::random_device device;
        rng_.seed((std::uint64_t{device()} << 32) ^ device());
    }
}

double ResiliencePipeline::next_random() {
    std::lock_guard lock(rng_mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

nlohmann::json ResiliencePipeline::execute(const Attempt& fn, const CancellationToken& outer) {
    const int max_attempts = policy_.retry ? policy_.retry->max_attempts : 1;
    for (int attempt = 1;; ++attempt) {
        outer.throw_if_cancelled();
        // Throws CircuitOpen, which is never retried (see the header).
        if (breaker_) breaker_->allow_or_throw();

        const CancellationToken token =
            policy_.attempt_timeout ? outer.child_with_timeout(clock_, *policy_.attempt_timeout)
                                    : outer.child();
        nlohmann::json result;
        std::exception_ptr error;
        try {
            result = fn(token, attempt);
        } catch (...) {
            error = std::current_exception();
        }
        if (token.timed_out()) {
            timeouts_.fetch_add(1, std::memory_order_relaxed);
            // A result that comes after the deadline is discarded: whoever set the timeout has
            // been told (or will be) that the attempt failed.
            if (!error)
                error = std::make_exception_ptr(Timeout(fmt::format(
                    "attempt {} of '{}' returned after its deadline and its result was "
                    "discarded; raise the attempt timeout or make the work shorter",
                    attempt, name_)));
        }
        if (!error) {
            if (breaker_) breaker_->record_success();
            return result;
        }

        const bool transient = policy_.retry ? policy_.retry->is_transient(error)
                                             : default_is_transient(error);
        const bool caller_gave_up = outer.cancelled();
        if (breaker_) {
            if (transient && !caller_gave_up)
                breaker_->record_failure();
            else
                breaker_->record_ignored();
        }
        if (!transient || caller_gave_up || attempt >= max_attempts) std::rethrow_exception(error);
        // This failure opened the circuit: the next attempt would be refused, so waiting for
        // it is pointless. The caller gets the failure itself; later calls get CircuitOpen.
        if (breaker_ && breaker_->state() == CircuitBreaker::State::Open)
            std::rethrow_exception(error);

        const auto delay = retry_delay(*policy_.retry, attempt - 1, next_random());
        retries_.fetch_add(1, std::memory_order_relaxed);
        logger_->warn("'{}' attempt {}/{} failed: {}; retrying in {} ms", name_, attempt,
                      max_attempts, detail::exception_message(error), delay.count());
        if (!outer.wait_for(clock_, delay)) std::rethrow_exception(error);
    }
}

ResilienceStats ResiliencePipeline::stats() const {
    ResilienceStats stats = breaker_ ? breaker_->stats() : ResilienceStats{};
    stats.retries += retries_.load(std::memory_order_relaxed);
    stats.timeouts += timeouts_.load(std::memory_order_relaxed);
    return stats;
}

// ---------------------------------------------------------------------------------------------
// Registry

PolicyRegistry::PolicyRegistry(ResiliencePolicy default_policy, std::shared_ptr<Clock> clock,
                               std::shared_ptr<spdlog::logger> logger)
    : default_policy_((validate(default_policy), std::move(default_policy))),
      clock_(or_system(std::move(clock))),
      logger_(or_default(std::move(logger))) {}

void PolicyRegistry::set_policy(const std::string& name, ResiliencePolicy policy) {
    validate(policy);
    std::lock_guard lock(mu_);
    if (pipelines_.count(name) != 0)
        throw InvalidInput(fmt::format(
            "the resilience policy of '{}' was set after its pipeline was created; set "
            "policies before the first call runs",
            name));
    overrides_.insert_or_assign(name, std::move(policy));
}

ResiliencePolicy PolicyRegistry::policy_for(const std::string& name) const {
    std::lock_guard lock(mu_);
    const auto it = overrides_.find(name);
    return it != overrides_.end() ? it->second : default_policy_;
}

ResiliencePipeline& PolicyRegistry::pipeline(const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = pipelines_.find(name);
    if (it == pipelines_.end()) {
        const auto policy = overrides_.find(name);
        auto pipeline = std::make_unique<ResiliencePipeline>(
            name, policy != overrides_.end() ? policy->second : default_policy_, clock_, logger_);
        it = pipelines_.emplace(name, std::move(pipeline)).first;
    }
    return *it->second;
}

ResilienceStats PolicyRegistry::stats() const {
    std::lock_guard lock(mu_);
    ResilienceStats total;
    for (const auto& [name, pipeline] : pipelines_) total += pipeline->stats();
    return total;
}

void PolicyRegistry::for_each(const std::function<void(const ResiliencePipeline&)>& fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [name, pipeline] : pipelines_) fn(*pipeline);
}

}  // namespace durable
