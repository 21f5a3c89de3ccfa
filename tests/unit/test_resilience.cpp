// Tests of durable/resilience.hpp: backoff delays, the circuit breaker's states, cancellation
// tokens, and the pipeline's order of timeout, breaker and retry. Time is a ManualClock.
#include "durable/resilience.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using durable::CancellationToken;
using durable::CircuitBreaker;
using durable::CircuitBreakerOptions;
using durable::ManualClock;
using durable::ResiliencePipeline;
using durable::ResiliencePolicy;
using durable::RetryOptions;
using json = nlohmann::json;
using State = CircuitBreaker::State;

std::shared_ptr<spdlog::logger> quiet_logger() {
    auto logger = std::make_shared<spdlog::logger>("resilience_test");
    logger->set_level(spdlog::level::off);
    return logger;
}

CircuitBreakerOptions consecutive(int threshold, std::chrono::milliseconds break_duration = 30s) {
    CircuitBreakerOptions options;
    options.failure_threshold = threshold;
    options.break_duration = break_duration;
    return options;
}

RetryOptions no_jitter(int max_attempts) {
    RetryOptions options;
    options.max_attempts = max_attempts;
    options.base_delay = 100ms;
    options.max_delay = 5s;
    options.jitter = false;
    return options;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Backoff

TEST_CASE("retry delays stay within full-jitter bounds and are capped at max_delay") {
    RetryOptions options;  // exponential, 100 ms .. 5 s, jitter on
    for (int retry = 0; retry <= 10; ++retry) {
        const auto cap = std::min<std::chrono::milliseconds>(5000ms, 100ms * (1LL << retry));
        for (double r : {0.0, 0.1, 0.5, 0.9, 0.999999}) {
            const auto d = durable::retry_delay(options, retry, r);
            CHECK(d >= 0ms);
            CHECK(d <= cap);
            CHECK(d.count() == static_cast<long long>(r * static_cast<double>(cap.count())));
        }
        options.jitter = false;
        CHECK(durable::retry_delay(options, retry, 0.3) == cap);
        options.jitter = true;
    }
    // Far past the cap: saturates instead of overflowing.
    CHECK(durable::retry_delay(no_jitter(3), 1'000'000, 0.0) == 5s);
    CHECK(durable::retry_delay(options, 1'000'000, 0.999999) <= 5s);
    CHECK(durable::retry_delay(options, 1'000'000, 0.999999) >= 4999ms);
}

TEST_CASE("constant backoff waits base_delay every time") {
    auto options = no_jitter(5);
    options.backoff = durable::Backoff::Constant;
    options.base_delay = 250ms;
    for (int retry = 0; retry <= 10; ++retry)
        CHECK(durable::retry_delay(options, retry, 0.7) == 250ms);
    options.jitter = true;
    for (int retry = 0; retry <= 10; ++retry)
        CHECK(durable::retry_delay(options, retry, 0.5) == 125ms);
}

TEST_CASE("default transience: everything but InvalidInput, CircuitOpen and Cancelled") {
    using durable::default_is_transient;
    CHECK(default_is_transient(std::make_exception_ptr(std::runtime_error("x"))));
    CHECK(default_is_transient(std::make_exception_ptr(durable::StoreError("x"))));
    CHECK(default_is_transient(std::make_exception_ptr(durable::Timeout("x"))));
    CHECK(default_is_transient(std::make_exception_ptr(42)));
    CHECK_FALSE(default_is_transient(std::make_exception_ptr(durable::InvalidInput("x"))));
    CHECK_FALSE(default_is_transient(std::make_exception_ptr(durable::CircuitOpen("c", 0, "x"))));
    CHECK_FALSE(default_is_transient(std::make_exception_ptr(durable::Cancelled("x"))));
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

TEST_CASE("breaker: closed -> open -> half-open -> closed") {
    auto clock = std::make_shared<ManualClock>();
    CircuitBreaker breaker("payments", consecutive(3), clock, quiet_logger());
    CHECK(breaker.state() == State::Closed);

    for (int i = 0; i < 2; ++i) {
        REQUIRE(breaker.allow());
        breaker.record_failure();
    }
    REQUIRE(breaker.allow());
    breaker.record_success();  // resets the consecutive count
    for (int i = 0; i < 3; ++i) {
        CHECK(breaker.state() == State::Closed);
        REQUIRE(breaker.allow());
        breaker.record_failure();
    }
    CHECK(breaker.state() == State::Open);
    CHECK_FALSE(breaker.allow());
    try {
        breaker.allow_or_throw();
        FAIL("allow_or_throw let a call through an open circuit");
    } catch (const durable::CircuitOpen& e) {
        const std::string message = e.what();
        CHECK(e.circuit() == "payments");
        CHECK(message.find("'payments'") != std::string::npos);
        CHECK(message.find("3 consecutive failures") != std::string::npos);
        CHECK(message.find("30000 ms") != std::string::npos);
        CHECK(message.find("2023-11-14T22:13:50.000Z") != std::string::npos);
        CHECK(e.half_open_at_ms() == clock->now_ms() + 30'000);
    }

    clock->advance(29'999ms);
    CHECK(breaker.state() == State::Open);
    CHECK_FALSE(breaker.allow());
    clock->advance(1ms);
    CHECK(breaker.state() == State::HalfOpen);
    CHECK(breaker.allow());        // the one trial call
    CHECK_FALSE(breaker.allow());  // others still fail fast
    CHECK_THROWS_WITH_AS(breaker.allow_or_throw(), doctest::Contains("half-open"),
                         durable::CircuitOpen);
    breaker.record_success();
    CHECK(breaker.state() == State::Closed);
    CHECK(breaker.allow());
    breaker.record_success();

    const auto stats = breaker.stats();
    CHECK(stats.breaker_opened == 1);
    CHECK(stats.breaker_half_opened == 1);
    CHECK(stats.breaker_closed == 1);
    CHECK(stats.rejected_by_breaker == 5);
}

TEST_CASE("breaker: a failure while half-open re-opens for another break") {
    auto clock = std::make_shared<ManualClock>();
    CircuitBreaker breaker("payments", consecutive(1, 10s), clock, quiet_logger());
    REQUIRE(breaker.allow());
    breaker.record_failure();
    REQUIRE(breaker.state() == State::Open);

    clock->advance(10s);
    REQUIRE(breaker.allow());
    breaker.record_failure();
    CHECK(breaker.state() == State::Open);
    clock->advance(9s);
    CHECK_FALSE(breaker.allow());
    CHECK_THROWS_WITH_AS(breaker.allow_or_throw(), doctest::Contains("a trial call failed"),
                         durable::CircuitOpen);
    clock->advance(1s);
    CHECK(breaker.allow());
    breaker.record_success();
    CHECK(breaker.state() == State::Closed);
    CHECK(breaker.stats().breaker_opened == 2);
    CHECK(breaker.stats().breaker_half_opened == 2);
}

TEST_CASE("breaker: several trial calls and a success threshold") {
    auto clock = std::make_shared<ManualClock>();
    auto options = consecutive(1, 1s);
    options.half_open_max_calls = 2;
    options.success_threshold = 3;
    CircuitBreaker breaker("search", options, clock, quiet_logger());
    REQUIRE(breaker.allow());
    breaker.record_failure();
    clock->advance(1s);

    CHECK(breaker.allow());
    CHECK(breaker.allow());
    CHECK_FALSE(breaker.allow());
    breaker.record_success();
    CHECK(breaker.state() == State::HalfOpen);
    CHECK(breaker.allow());  // a slot came free
    breaker.record_ignored();  // says nothing about health: frees the slot, counts nothing
    CHECK(breaker.allow());
    breaker.record_success();
    CHECK(breaker.state() == State::HalfOpen);
    breaker.record_success();
    CHECK(breaker.state() == State::Closed);
}

TEST_CASE("breaker: the failure ratio over the sliding window opens it") {
    auto clock = std::make_shared<ManualClock>();
    CircuitBreakerOptions options;
    options.failure_threshold = 0;  // only the ratio
    options.failure_ratio = 0.5;
    options.minimum_calls = 4;
    options.window = 10s;
    CircuitBreaker breaker("inventory", options, clock, quiet_logger());

    auto call = [&](bool ok) {
        REQUIRE(breaker.allow());
        ok ? breaker.record_success() : breaker.record_failure();
    };

    SUBCASE("half the calls fail once the window holds enough calls") {
        call(false);
        call(false);
        call(false);  // 3 of 3 failed, but fewer than minimum_calls
        CHECK(breaker.state() == State::Closed);
        call(true);   // 3 of 4: judged only on the next failure
        CHECK(breaker.state() == State::Closed);
        call(false);  // 4 of 5
        CHECK(breaker.state() == State::Open);
        CHECK_THROWS_WITH_AS(breaker.allow_or_throw(), doctest::Contains("4 of the last 5"),
                             durable::CircuitOpen);
    }
    SUBCASE("two failures in three open it") {
        for (int i = 0; i < 6 && breaker.state() == State::Closed; ++i) call(i % 3 == 0);
        CHECK(breaker.state() == State::Open);
    }
    SUBCASE("a healthy ratio keeps it closed") {
        for (int i = 0; i < 30; ++i) call(i % 3 != 2);  // every third call fails
        CHECK(breaker.state() == State::Closed);
    }
    SUBCASE("old failures slide out of the window") {
        call(false);
        call(false);
        call(false);
        clock->advance(10s);
        call(true);
        call(true);
        call(true);
        call(false);  // 1 of 4 in the window; 4 of 7 had the old ones stayed
        CHECK(breaker.state() == State::Closed);
    }
}

TEST_CASE("breaker: thread-safe under concurrent callers") {
    auto clock = std::make_shared<ManualClock>();
    auto options = consecutive(3, 5ms);
    options.half_open_max_calls = 2;
    CircuitBreaker breaker("hot", options, clock, quiet_logger());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                if (breaker.allow()) {
                    ((i + t) % 4 == 0) ? breaker.record_failure() : breaker.record_success();
                }
                if (i % 16 == 0) clock->advance(1ms);
                (void)breaker.state();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    const auto stats = breaker.stats();
    CHECK(stats.breaker_half_opened <= stats.breaker_opened);
    CHECK(stats.breaker_closed <= stats.breaker_half_opened);
}

// ---------------------------------------------------------------------------------------------
// Cancellation

TEST_CASE("cancellation tokens: cancel, deadlines on the clock, children") {
    auto clock = std::make_shared<ManualClock>();
    CancellationToken plain;
    CHECK_FALSE(plain.cancelled());
    CHECK_NOTHROW(plain.throw_if_cancelled());
    CHECK_FALSE(plain.deadline().has_value());

    auto timed = CancellationToken::with_timeout(clock, 500ms);
    CHECK_FALSE(timed.cancelled());
    clock->advance(499ms);
    CHECK_FALSE(timed.timed_out());
    clock->advance(1ms);
    CHECK(timed.cancelled());
    CHECK(timed.timed_out());
    CHECK_THROWS_WITH_AS(timed.throw_if_cancelled(), doctest::Contains("500 ms timeout"),
                         durable::Timeout);

    CancellationToken parent;
    auto child = parent.child_with_timeout(clock, 1s);
    auto copy = child;  // copies share the state
    CHECK(child.deadline() == clock->steady_now() + 1s);
    parent.cancel();
    CHECK(copy.cancelled());
    CHECK_FALSE(copy.timed_out());
    CHECK_THROWS_AS(copy.throw_if_cancelled(), durable::Cancelled);

    CancellationToken other;
    auto grandchild = other.child().child();
    grandchild.cancel();
    CHECK_FALSE(other.cancelled());  // cancelling a child leaves the parent alone

    auto at = CancellationToken::with_deadline(clock, clock->steady_now() + 2s);
    auto nested = at.child_with_timeout(clock, 10s);
    CHECK(nested.deadline() == clock->steady_now() + 2s);  // the earliest one wins
    clock->advance(2s);
    CHECK_THROWS_WITH_AS(nested.throw_if_cancelled(), doctest::Contains("deadline"),
                         durable::Timeout);
}

TEST_CASE("cancellation tokens: wait_for stops at the deadline or on cancel") {
    auto clock = std::make_shared<ManualClock>();
    CancellationToken plain;
    CHECK(plain.wait_for(clock, 1s));
    CHECK(clock->slept() == 1s);

    auto timed = CancellationToken::with_timeout(clock, 300ms);
    CHECK_FALSE(timed.wait_for(clock, 1s));  // advances only to the deadline
    CHECK(clock->slept() == 1300ms);
    CHECK(timed.timed_out());

    plain.cancel();
    CHECK_FALSE(plain.wait_for(clock, 1s));
    CHECK(clock->slept() == 1300ms);

    SUBCASE("a real-time wait is cut short by cancel() on any relative") {
        // Waits are bounded at a minute: a missed wake-up fails the test instead of hanging.
        auto system = durable::SystemClock::instance();
        CancellationToken root;
        auto child = root.child().child_with_timeout(system, 60s);
        std::thread canceller([&] { root.cancel(); });
        CHECK_FALSE(child.wait_for(system, 60s));
        canceller.join();
        CHECK_THROWS_AS(child.throw_if_cancelled(), durable::Cancelled);
    }
}

// ---------------------------------------------------------------------------------------------
// Pipeline

TEST_CASE("pipeline: transient failures are retried with backoff, then succeed") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(3);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    std::vector<int> attempts;
    const json result = pipeline.execute([&](const CancellationToken&, int attempt) {
        attempts.push_back(attempt);
        if (attempt < 3) throw durable::StoreError("busy");
        return json{{"ok", true}};
    });
    CHECK(result == json{{"ok", true}});
    CHECK(attempts == std::vector<int>{1, 2, 3});
    CHECK(clock->slept() == 100ms + 200ms);
    CHECK(pipeline.stats().retries == 2);
}

TEST_CASE("pipeline: the last failure is rethrown when attempts run out") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(4);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    int calls = 0;
    CHECK_THROWS_WITH_AS(pipeline.execute([&](const CancellationToken&, int attempt) -> json {
        ++calls;
        throw durable::StoreError("busy #" + std::to_string(attempt));
    }),
                         "busy #4", durable::StoreError);
    CHECK(calls == 4);
    CHECK(pipeline.stats().retries == 3);
}

TEST_CASE("pipeline: a non-transient failure is not retried") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(5);
    policy.breaker = consecutive(1);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    int calls = 0;
    CHECK_THROWS_AS(pipeline.execute([&](const CancellationToken&, int) -> json {
        ++calls;
        throw durable::InvalidInput("card number is malformed");
    }),
                    durable::InvalidInput);
    CHECK(calls == 1);
    CHECK(pipeline.stats().retries == 0);
    CHECK(clock->slept() == 0ms);
    // Bad input says nothing about the dependency: the breaker did not count it.
    CHECK(pipeline.breaker()->state() == State::Closed);

    SUBCASE("a custom predicate decides") {
        auto retry = no_jitter(5);
        retry.is_transient = [](const std::exception_ptr&) { return false; };
        ResiliencePolicy custom;
        custom.retry = std::move(retry);
        ResiliencePipeline strict("strict", custom, clock, quiet_logger());
        int strict_calls = 0;
        CHECK_THROWS_AS(strict.execute([&](const CancellationToken&, int) -> json {
            ++strict_calls;
            throw durable::StoreError("busy");
        }),
                        durable::StoreError);
        CHECK(strict_calls == 1);
    }
}

TEST_CASE("pipeline: a timed-out attempt is cancelled, counted as a failure and retried") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(3);
    policy.breaker = consecutive(5);
    policy.attempt_timeout = 1s;
    ResiliencePipeline pipeline("slow", policy, clock, quiet_logger());

    int polls = 0;
    const json result = pipeline.execute([&](const CancellationToken& token, int attempt) {
        if (attempt == 1) {
            for (;;) {  // slow work that polls its token between steps
                token.throw_if_cancelled();
                ++polls;
                clock->sleep_for(200ms);
            }
        }
        return json("done");
    });
    CHECK(result == "done");
    CHECK(polls == 5);  // 0, 200, ..., 800 ms; at 1000 ms the token says stop
    const auto stats = pipeline.stats();
    CHECK(stats.timeouts == 1);
    CHECK(stats.retries == 1);
    CHECK(clock->slept() == 1000ms + 100ms);
}

TEST_CASE("pipeline: a value returned after the deadline is a Timeout failure") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(1);
    policy.breaker = consecutive(1);
    policy.attempt_timeout = 500ms;
    ResiliencePipeline pipeline("slow", policy, clock, quiet_logger());
    CHECK_THROWS_WITH_AS(pipeline.execute([&](const CancellationToken&, int) {
        clock->sleep_for(600ms);  // ignores its token
        return json(1);
    }),
                         doctest::Contains("returned after its deadline"), durable::Timeout);
    CHECK(pipeline.stats().timeouts == 1);
    CHECK(pipeline.breaker()->state() == State::Open);  // a timeout is the dependency's fault
}

TEST_CASE("pipeline: CircuitOpen is not retried") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(5);
    policy.breaker = consecutive(2);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    int calls = 0;
    // Attempts 1 and 2 fail; the second failure opens the circuit, so retrying stops there and
    // that failure is what the caller sees.
    CHECK_THROWS_WITH_AS(pipeline.execute([&](const CancellationToken&, int attempt) -> json {
        ++calls;
        throw durable::StoreError("down #" + std::to_string(attempt));
    }),
                         "down #2", durable::StoreError);
    CHECK(calls == 2);
    CHECK(clock->slept() == 100ms);  // no sleep once the circuit opened
    // The next call is refused before it runs, and the refusal is not retried.
    CHECK_THROWS_AS(pipeline.execute([&](const CancellationToken&, int) -> json {
        ++calls;
        return json();
    }),
                    durable::CircuitOpen);
    CHECK(calls == 2);
    CHECK(clock->slept() == 100ms);
    const auto stats = pipeline.stats();
    CHECK(stats.retries == 1);
    CHECK(stats.rejected_by_breaker == 1);
    CHECK(stats.breaker_opened == 1);

    clock->advance(30s);
    CHECK(pipeline.execute([](const CancellationToken&, int) { return json(7); }) == 7);
    CHECK(pipeline.breaker()->state() == State::Closed);
}

TEST_CASE("pipeline: a circuit opened by other callers during an attempt stops the retries") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(5);
    policy.breaker = consecutive(3);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    int calls = 0;
    CHECK_THROWS_AS(pipeline.execute([&](const CancellationToken&, int) -> json {
        ++calls;
        // Meanwhile other calls fail and open the circuit.
        for (int i = 0; i < 3; ++i) {
            if (pipeline.breaker()->allow()) pipeline.breaker()->record_failure();
        }
        throw durable::StoreError("down");
    }),
                    durable::StoreError);
    CHECK(calls == 1);
    CHECK(clock->slept() == 0ms);
    CHECK_THROWS_AS(pipeline.execute([](const CancellationToken&, int) { return json(); }),
                    durable::CircuitOpen);
}

TEST_CASE("pipeline: a cancelled caller stops the retries") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(5);
    ResiliencePipeline pipeline("charge", policy, clock, quiet_logger());
    CancellationToken outer;
    int calls = 0;
    CHECK_THROWS_AS(pipeline.execute(
                        [&](const CancellationToken&, int) -> json {
                            ++calls;
                            outer.cancel();  // e.g. the host is shutting down
                            throw durable::StoreError("busy");
                        },
                        outer),
                    durable::StoreError);
    CHECK(calls == 1);
    CHECK_THROWS_AS(pipeline.execute([](const CancellationToken&, int) { return json(); }, outer),
                    durable::Cancelled);
}

TEST_CASE("pipeline: cancelling the caller's token ends a real-time backoff at once") {
    // A one-minute backoff on the real clock: only the interruptible wait ends it early.
    ResiliencePolicy policy;
    policy.retry = no_jitter(3);
    policy.retry->base_delay = 60s;
    policy.retry->max_delay = 60s;
    ResiliencePipeline pipeline("charge", policy, durable::SystemClock::instance(), quiet_logger());
    CancellationToken outer;
    std::promise<void> failed_once;
    std::atomic<int> calls{0};
    auto running = std::async(std::launch::async, [&] {
        return pipeline.execute(
            [&](const CancellationToken&, int) -> json {
                if (++calls == 1) failed_once.set_value();
                throw durable::StoreError("busy");
            },
            outer);
    });
    REQUIRE(failed_once.get_future().wait_for(60s) == std::future_status::ready);
    outer.cancel();  // e.g. the host stops while the activity waits to retry
    REQUIRE(running.wait_for(60s) == std::future_status::ready);
    CHECK_THROWS_AS(running.get(), durable::StoreError);  // the last failure
    CHECK(calls == 1);
}

TEST_CASE("pipeline: run() returns any type") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy policy;
    policy.retry = no_jitter(3);
    ResiliencePipeline pipeline("typed", policy, clock, quiet_logger());
    const std::string text = pipeline.run([](const CancellationToken&, int attempt) {
        if (attempt == 1) throw std::runtime_error("once");
        return std::string("attempt ") + std::to_string(attempt);
    });
    CHECK(text == "attempt 2");
    int side_effect = 0;
    pipeline.run([&](const CancellationToken&, int) { side_effect = 5; });
    CHECK(side_effect == 5);
}

TEST_CASE("pipeline: jittered delays come from a seedable generator") {
    auto run_with_seed = [](std::uint64_t seed) {
        auto clock = std::make_shared<ManualClock>();
        ResiliencePolicy policy;
        policy.retry = RetryOptions{};
        policy.retry->max_attempts = 6;
        policy.retry->seed = seed;
        ResiliencePipeline pipeline("jitter", policy, clock, quiet_logger());
        CHECK_THROWS(pipeline.execute([](const CancellationToken&, int) -> json {
            throw std::runtime_error("down");
        }));
        return clock->slept();
    };
    const auto a = run_with_seed(7);
    CHECK(a == run_with_seed(7));
    CHECK(a <= 100ms + 200ms + 400ms + 800ms + 1600ms);
}

TEST_CASE("invalid policies are refused") {
    ResiliencePolicy policy;
    policy.retry = RetryOptions{};
    policy.retry->max_attempts = 0;
    CHECK_THROWS_AS(ResiliencePipeline("x", policy), durable::InvalidInput);
    policy.retry.reset();
    policy.attempt_timeout = 0ms;
    CHECK_THROWS_AS(ResiliencePipeline("x", policy), durable::InvalidInput);
    policy.attempt_timeout.reset();
    policy.breaker = CircuitBreakerOptions{};
    policy.breaker->failure_ratio = 1.5;
    CHECK_THROWS_AS(ResiliencePipeline("x", policy), durable::InvalidInput);
}

// ---------------------------------------------------------------------------------------------
// Registry

TEST_CASE("registry: one pipeline and one breaker per activity name") {
    auto clock = std::make_shared<ManualClock>();
    ResiliencePolicy defaults;
    defaults.retry = no_jitter(2);
    defaults.breaker = consecutive(1);
    durable::PolicyRegistry registry(defaults, clock, quiet_logger());
    ResiliencePolicy charge;
    charge.retry = no_jitter(4);
    registry.set_policy("charge", charge);

    CHECK(registry.policy_for("charge").retry->max_attempts == 4);
    CHECK(registry.policy_for("ship").retry->max_attempts == 2);
    auto& ship = registry.pipeline("ship");
    CHECK(&ship == &registry.pipeline("ship"));
    CHECK(&ship != &registry.pipeline("email"));
    CHECK(registry.pipeline("charge").breaker() == nullptr);

    // Opening the circuit of "ship" leaves "email" alone.
    CHECK_THROWS_AS(ship.execute([](const CancellationToken&, int) -> json {
        throw std::runtime_error("down");
    }),
                    std::runtime_error);
    CHECK(ship.breaker()->state() == State::Open);
    CHECK(registry.pipeline("email").breaker()->state() == State::Closed);
    CHECK(registry.stats().breaker_opened == 1);

    CHECK_THROWS_AS(registry.set_policy("ship", charge), durable::InvalidInput);
}

TEST_CASE("registry: concurrent lookups create each pipeline once") {
    durable::PolicyRegistry registry({}, std::make_shared<ManualClock>(), quiet_logger());
    std::vector<std::thread> threads;
    std::vector<std::set<ResiliencePipeline*>> seen(8);
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i)
                seen[static_cast<std::size_t>(t)].insert(
                    &registry.pipeline("activity-" + std::to_string(i % 10)));
        });
    }
    for (auto& thread : threads) thread.join();
    std::set<ResiliencePipeline*> all;
    for (const auto& s : seen) all.insert(s.begin(), s.end());
    CHECK(all.size() == 10);
}
