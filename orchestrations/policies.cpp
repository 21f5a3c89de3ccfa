// The resilience settings of the example activities.
#include "orchestrations/policies.hpp"

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

using namespace std::chrono_literals;

bool is_declined(const TaskFailed& failure) {
    const auto& type = failure.error_type();
    return type == "Declined" || (type.size() > 10 && type.ends_with("::Declined"));
}

RetryPolicy durable_retry(int attempts, std::chrono::milliseconds first_delay) {
    RetryPolicy p;
    p.max_attempts = attempts;
    p.first_delay = first_delay;
    p.backoff_coefficient = 2.0;
    p.max_delay = 10s;
    p.retryable = [](const TaskFailed& e) { return !is_declined(e); };
    return p;
}

ResiliencePolicy retrying_policy() {
    RetryOptions retry;
    retry.max_attempts = 3;
    retry.base_delay = 20ms;
    retry.max_delay = 200ms;
    retry.backoff = Backoff::Exponential;
    retry.jitter = true;
    retry.is_transient = is_transient;
    ResiliencePolicy p;
    p.retry = retry;
    return p;
}

ResiliencePolicy guarded_policy() {
    ResiliencePolicy p = retrying_policy();
    CircuitBreakerOptions breaker;
    breaker.failure_threshold = 5;
    breaker.break_duration = 1s;
    breaker.half_open_max_calls = 1;
    breaker.success_threshold = 1;
    p.breaker = breaker;
    return p;
}

ResiliencePolicy single_attempt_policy() {
    return ResiliencePolicy{};
}

}  // namespace durable::orchestrations
