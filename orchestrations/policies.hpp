// orchestrations/policies.hpp — the resilience settings the example activities run under.
//
// Two layers, as the runtime intends: an in-process ResiliencePolicy per activity (fast
// retries with backoff and jitter, a circuit breaker for the payment gateway), and a durable
// RetryPolicy in the orchestrators for when the in-process retries are exhausted (its waits
// are durable timers, so they survive a crash). Business refusals (`Declined`) are retried by
// neither and are not counted by the breakers.
#pragma once

#include <chrono>

#include <durable/durable.hpp>

namespace durable::orchestrations {

// True if the failed task was refused by the business logic (a Declined error).
bool is_declined(const TaskFailed& failure);

// A durable retry: `attempts` in all, waiting `first_delay`, then twice as long each time;
// Declined failures are not retried.
RetryPolicy durable_retry(int attempts, std::chrono::milliseconds first_delay);

// In-process retries of transient failures: 3 attempts, 20 ms base exponential backoff with
// jitter; no breaker.
ResiliencePolicy retrying_policy();

// retrying_policy() behind a circuit breaker that opens after 5 failures in a row for 1 s.
ResiliencePolicy guarded_policy();

// One attempt, no breaker: failures go straight to the orchestrator (which compensates).
ResiliencePolicy single_attempt_policy();

}  // namespace durable::orchestrations
