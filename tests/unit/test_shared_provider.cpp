// Tests of durable::SharedProvider: building, failing, breaking, resetting and destroying a
// shared resource. Time is a ManualClock (or a gated one that lets the test step the builder
// through its retry delays); every wait is bounded.
#include "durable/shared_provider.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using durable::ManualClock;
using durable::SharedProvider;
using durable::SharedProviderOptions;

constexpr auto kBound = 20s;  // how long any test waits before declaring a hang

std::shared_ptr<spdlog::logger> quiet_logger() {
    auto logger = std::make_shared<spdlog::logger>("shared_provider_test");
    logger->set_level(spdlog::level::off);
    return logger;
}

// A count that tests can wait on.
class Counter {
public:
    void bump() {
        {
            std::lock_guard lock(mu_);
            ++count_;
        }
        cv_.notify_all();
    }
    // True once the count reaches `n`; false if that takes longer than kBound.
    bool wait_at_least(int n) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, kBound, [&] { return count_ >= n; });
    }
    int value() const {
        std::lock_guard lock(mu_);
        return count_;
    }

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    int count_ = 0;  // guarded by mu_
};

// Permits handed out by the test and taken by the code under test.
class Gate {
public:
    void open(int permits) {
        {
            std::lock_guard lock(mu_);
            permits_ += permits;
        }
        cv_.notify_all();
    }
    // Takes a permit; gives up after kBound so a failing test cannot hang.
    bool pass() {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, kBound, [&] { return permits_ > 0; })) return false;
        --permits_;
        return true;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    int permits_ = 0;  // guarded by mu_
};

// A manual clock whose sleep_for waits for the test to open its gate, so the test knows where
// the builder is: inside a retry delay, with the last failure already published.
class GatedClock final : public durable::Clock {
public:
    std::int64_t now_ms() const override { return inner_.now_ms(); }
    std::chrono::steady_clock::time_point steady_now() const override {
        return inner_.steady_now();
    }
    void sleep_for(std::chrono::nanoseconds d) override {
        sleeping.bump();
        gate.pass();
        inner_.sleep_for(d);
    }
    std::chrono::nanoseconds slept() const { return inner_.slept(); }

    Counter sleeping;
    Gate gate;

private:
    ManualClock inner_;
};

struct Conn {
    int id = 0;
    std::string input;
    std::function<void()> on_broken;
};

using ConnProvider = SharedProvider<std::string, Conn>;

SharedProviderOptions constant_delay(std::chrono::milliseconds delay) {
    SharedProviderOptions options;
    options.backoff = durable::Backoff::Constant;
    options.retry_delay = delay;
    return options;
}

bool ready(const ConnProvider::Future& future) {
    return future.wait_for(kBound) == std::future_status::ready;
}

}  // namespace

TEST_CASE("factory fails twice then succeeds: callers see each failure, then the resource") {
    auto clock = std::make_shared<GatedClock>();
    Counter entered;
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            const int n = ++calls;
            entered.bump();
            if (n <= 2) throw durable::StoreError("connect failed #" + std::to_string(n));
            return std::make_shared<Conn>(Conn{n, input, std::move(on_broken)});
        },
        constant_delay(250ms), clock, quiet_logger());

    // The builder is waiting out its delay; every caller gets the failure at once.
    REQUIRE(clock->sleeping.wait_at_least(1));
    auto first = provider.current();
    CHECK(first.wait_for(0s) == std::future_status::ready);
    CHECK_THROWS_WITH_AS(first.get(), "connect failed #1", durable::StoreError);
    CHECK_THROWS_WITH_AS(provider.get(), "connect failed #1", durable::StoreError);

    clock->gate.open(1);
    REQUIRE(clock->sleeping.wait_at_least(2));
    CHECK_THROWS_WITH_AS(provider.get(), "connect failed #2", durable::StoreError);

    clock->gate.open(1);
    REQUIRE(entered.wait_at_least(3));
    auto third = provider.current();
    REQUIRE(ready(third));
    const auto conn = third.get();
    CHECK(conn->id == 3);
    CHECK(conn->input == "dsn");
    CHECK(provider.get() == conn);
    CHECK(provider.current().wait_for(0s) == std::future_status::ready);

    CHECK(clock->slept() == 500ms);
    const auto stats = provider.stats();
    CHECK(stats.builds == 1);
    CHECK(stats.failures == 2);
    CHECK(calls == 3);
}

TEST_CASE("exponential retry delays double up to the maximum") {
    auto clock = std::make_shared<ManualClock>();
    Counter succeeded;
    std::atomic<int> calls{0};
    SharedProviderOptions options;
    options.backoff = durable::Backoff::Exponential;
    options.retry_delay = 100ms;
    options.max_delay = 1000ms;
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            const int n = ++calls;
            if (n <= 6) throw durable::StoreError("down");
            succeeded.bump();
            return std::make_shared<Conn>(Conn{n, input, std::move(on_broken)});
        },
        options, clock, quiet_logger());

    REQUIRE(succeeded.wait_at_least(1));
    REQUIRE(ready(provider.current()));
    CHECK(provider.get()->id == 7);
    CHECK(clock->slept() == 100ms + 200ms + 400ms + 800ms + 1000ms + 1000ms);
}

TEST_CASE("a broken resource is replaced and callers see the new one") {
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            return std::make_shared<Conn>(Conn{++calls, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    auto first = provider.get();
    REQUIRE(first->id == 1);
    std::weak_ptr<Conn> first_weak = first;

    first->on_broken();  // the resource noticed it broke
    auto second = provider.get();
    CHECK(second->id == 2);
    CHECK(second != first);

    provider.report_broken(second);  // a caller noticed it broke
    auto third = provider.get();
    CHECK(third->id == 3);

    // The provider dropped its references to the replaced resource.
    first.reset();
    CHECK(first_weak.expired());

    const auto stats = provider.stats();
    CHECK(stats.broken == 2);
    CHECK(stats.builds == 3);
}

TEST_CASE("a stale on_broken or an old pointer does not replace the current resource") {
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            return std::make_shared<Conn>(Conn{++calls, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    auto first = provider.get();
    first->on_broken();
    auto second = provider.get();
    REQUIRE(second->id == 2);

    first->on_broken();              // the old resource's callback, again
    provider.report_broken(first);   // a caller still holding the old resource
    CHECK(provider.get() == second);
    CHECK(provider.stats().broken == 1);
    CHECK(provider.stats().builds == 2);
    CHECK(calls == 2);
}

TEST_CASE("a resource reported broken inside its factory is not handed out") {
    auto clock = std::make_shared<GatedClock>();
    Counter entered;
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            entered.bump();
            const int n = entered.value();
            if (n == 1) on_broken();  // e.g. the handshake succeeded, then the socket closed
            return std::make_shared<Conn>(Conn{n, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    REQUIRE(clock->sleeping.wait_at_least(1));
    CHECK_THROWS_WITH_AS(provider.get(), doctest::Contains("reported broken"), durable::Error);
    clock->gate.open(1);
    // Build 2 is requested before the factory is entered, so current() now hands out its
    // future.
    REQUIRE(entered.wait_at_least(2));
    REQUIRE(ready(provider.current()));
    CHECK(provider.get()->id == 2);
    const auto stats = provider.stats();
    CHECK(stats.broken == 1);
    CHECK(stats.failures == 1);
    CHECK(stats.builds == 1);
}

TEST_CASE("the factory never runs concurrently under 16 threads hammering the provider") {
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> in_factory{0};
    std::atomic<int> max_in_factory{0};
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            const int now = ++in_factory;
            int seen = max_in_factory.load();
            while (now > seen && !max_in_factory.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::yield();
            const int n = ++calls;
            --in_factory;
            if (n % 4 == 0) throw durable::StoreError("flaky");
            return std::make_shared<Conn>(Conn{n, input, std::move(on_broken)});
        },
        constant_delay(1ms), clock, quiet_logger());

    constexpr int kThreads = 16;
    constexpr int kRounds = 200;
    std::atomic<int> hung{0};
    std::atomic<int> got{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::shared_ptr<Conn> old;
            for (int i = 0; i < kRounds; ++i) {
                auto future = provider.current();
                if (future.wait_for(kBound) != std::future_status::ready) {
                    ++hung;
                    return;
                }
                try {
                    auto conn = future.get();
                    ++got;
                    switch ((t + i) % 5) {
                        case 0: provider.report_broken(conn); break;
                        case 1: conn->on_broken(); break;
                        case 2: if (old) old->on_broken(); break;  // often stale
                        case 3: if (i % 40 == 0) provider.reset("dsn-" + std::to_string(i)); break;
                        default: break;
                    }
                    old = conn;
                } catch (const durable::StoreError&) {
                    ++failed;
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();

    CHECK(hung == 0);
    CHECK(max_in_factory == 1);
    CHECK(got + failed == kThreads * kRounds);
    const auto stats = provider.stats();
    CHECK(stats.builds + stats.failures <= static_cast<std::uint64_t>(calls.load()));
    CHECK(stats.builds >= 1);
}

TEST_CASE("reset rebuilds from the new input") {
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn-a",
        [&](const std::string& input, std::function<void()> on_broken) {
            return std::make_shared<Conn>(Conn{++calls, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    auto a = provider.get();
    CHECK(a->input == "dsn-a");
    std::weak_ptr<Conn> a_weak = a;
    a.reset();

    provider.reset("dsn-b");
    auto b = provider.get();
    CHECK(b->input == "dsn-b");
    CHECK(a_weak.expired());
    CHECK(provider.stats().resets == 1);
    CHECK(provider.stats().builds == 2);
}

TEST_CASE("reset during a build discards it, callers waiting get the new input's resource") {
    auto clock = std::make_shared<ManualClock>();
    Counter entered;
    Gate gate;
    std::mutex mu;
    std::vector<std::weak_ptr<Conn>> built;  // guarded by mu
    ConnProvider provider(
        "db", "dsn-a",
        [&](const std::string& input, std::function<void()> on_broken) {
            entered.bump();
            gate.pass();
            auto conn = std::make_shared<Conn>(Conn{entered.value(), input, std::move(on_broken)});
            std::lock_guard lock(mu);
            built.push_back(conn);
            return conn;
        },
        constant_delay(10ms), clock, quiet_logger());

    REQUIRE(entered.wait_at_least(1));
    auto waiting = provider.current();  // the build from dsn-a is in flight
    provider.reset("dsn-b");
    gate.open(2);
    REQUIRE(ready(waiting));
    CHECK(waiting.get()->input == "dsn-b");
    CHECK(provider.get() == waiting.get());
    std::lock_guard lock(mu);
    REQUIRE(built.size() == 2);
    CHECK(built[0].expired());  // the dsn-a resource was dropped, never handed out
    CHECK(provider.stats().builds == 1);
}

TEST_CASE("reset and destruction cut a real-time retry delay short") {
    // A SystemClock with an hour-long delay: only the interruptible wait can pass this test.
    std::atomic<int> calls{0};
    auto provider = std::make_unique<ConnProvider>(
        "db", "bad",
        [&](const std::string& input, std::function<void()> on_broken) {
            ++calls;
            if (input == "bad") throw durable::StoreError("bad input");
            return std::make_shared<Conn>(Conn{calls.load(), input, std::move(on_broken)});
        },
        constant_delay(std::chrono::hours(1)), durable::SystemClock::instance(), quiet_logger());

    auto first = provider->current();
    REQUIRE(ready(first));
    CHECK_THROWS_AS(first.get(), durable::StoreError);

    provider->reset("good");
    auto second = provider->current();
    REQUIRE(ready(second));
    CHECK(second.get()->input == "good");

    provider->reset("bad");
    auto third = provider->current();
    REQUIRE(ready(third));
    CHECK_THROWS_AS(third.get(), durable::StoreError);

    Counter destroyed;
    std::thread destroyer([&] {
        provider.reset();
        destroyed.bump();
    });
    CHECK(destroyed.wait_at_least(1));
    destroyer.join();
}

TEST_CASE("no stack growth over 100,000 failed attempts") {
    constexpr int kFailures = 100'000;
    auto clock = std::make_shared<ManualClock>();
    Counter succeeded;
    std::atomic<int> calls{0};
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            const int n = ++calls;
            if (n <= kFailures) throw durable::StoreError("down");
            succeeded.bump();
            return std::make_shared<Conn>(Conn{n, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    REQUIRE(succeeded.wait_at_least(1));
    REQUIRE(ready(provider.current()));
    CHECK(provider.get()->id == kFailures + 1);
    CHECK(provider.stats().failures == static_cast<std::uint64_t>(kFailures));
    CHECK(clock->slept() == kFailures * 10ms);
}

TEST_CASE("destruction while the factory runs waits for it, then drops what it built") {
    auto clock = std::make_shared<ManualClock>();
    Counter entered;
    Gate gate;
    std::mutex mu;
    std::weak_ptr<Conn> built;             // guarded by mu
    std::function<void()> saved_on_broken;  // guarded by mu
    auto provider = std::make_unique<ConnProvider>(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) {
            entered.bump();
            gate.pass();
            auto conn = std::make_shared<Conn>(Conn{1, input, on_broken});
            std::lock_guard lock(mu);
            built = conn;
            saved_on_broken = std::move(on_broken);
            return conn;
        },
        constant_delay(10ms), clock, quiet_logger());

    REQUIRE(entered.wait_at_least(1));
    auto waiting = provider->current();
    std::thread destroyer([&] { provider.reset(); });
    // Give the destructor a moment to start waiting; the checks below hold either way.
    std::this_thread::sleep_for(20ms);
    gate.open(1);
    destroyer.join();

    // The caller waiting on that build is answered (resource or Error), never left hanging.
    REQUIRE(waiting.wait_for(0s) == std::future_status::ready);
    try {
        waiting.get();
    } catch (const durable::Error&) {
    }
    waiting = {};
    std::lock_guard lock(mu);
    CHECK(built.expired());
    REQUIRE(saved_on_broken);
    saved_on_broken();  // a callback outliving its provider does nothing
}

TEST_CASE("a factory returning null is a failed attempt") {
    auto clock = std::make_shared<GatedClock>();
    Counter entered;
    ConnProvider provider(
        "db", "dsn",
        [&](const std::string& input, std::function<void()> on_broken) -> std::shared_ptr<Conn> {
            entered.bump();
            if (entered.value() == 1) return nullptr;
            return std::make_shared<Conn>(Conn{2, input, std::move(on_broken)});
        },
        constant_delay(10ms), clock, quiet_logger());

    REQUIRE(clock->sleeping.wait_at_least(1));
    CHECK_THROWS_WITH_AS(provider.get(), doctest::Contains("returned no resource"),
                         durable::Error);
    clock->gate.open(1);
    REQUIRE(entered.wait_at_least(2));
    REQUIRE(ready(provider.current()));
    CHECK(provider.get()->id == 2);
    CHECK(provider.stats().failures == 1);
}

TEST_CASE("providers of different types live behind SharedResource") {
    auto clock = std::make_shared<ManualClock>();
    std::map<std::string, std::unique_ptr<durable::SharedResource>> resources;
    resources.emplace(
        "db", std::make_unique<ConnProvider>(
                  "db", "dsn",
                  [](const std::string& input, std::function<void()> on_broken) {
                      return std::make_shared<Conn>(Conn{1, input, std::move(on_broken)});
                  },
                  constant_delay(10ms), clock, quiet_logger()));
    resources.emplace(
        "counter", std::make_unique<SharedProvider<int, int>>(
                       "counter", 41,
                       [](const int& input, std::function<void()>) {
                           return std::make_shared<int>(input + 1);
                       },
                       constant_delay(10ms), clock, quiet_logger()));

    auto& db = *resources.at("db");
    CHECK(db.name() == "db");
    auto conn = durable::acquire_as<Conn>(db);
    CHECK(conn->input == "dsn");
    CHECK(*durable::acquire_as<int>(*resources.at("counter")) == 42);
    CHECK_THROWS_AS(durable::acquire_as<int>(db), durable::InvalidInput);

    db.report_broken(conn);
    auto next = durable::acquire_as<Conn>(db);
    CHECK(next != conn);
}

TEST_CASE("options with impossible delays are refused") {
    auto factory = [](const std::string&, std::function<void()>) {
        return std::make_shared<Conn>();
    };
    CHECK_THROWS_AS(ConnProvider("db", "dsn", factory, constant_delay(-1ms)),
                    durable::InvalidInput);
    CHECK_THROWS_AS(ConnProvider("db", "dsn", factory, constant_delay(std::chrono::hours(25))),
                    durable::InvalidInput);
    CHECK_THROWS_AS(ConnProvider("db", "dsn", nullptr), durable::InvalidInput);
}
