// durable/clock.hpp — the time source every part of durable reads.
//
// Two clocks live behind one interface: wall time (`now()`, milliseconds since the Unix
// epoch, used for timer due times, lease expiry and timestamps in history) and monotonic
// time (`steady_now()`, used for deadlines and self-fencing). Lease times are compared in
// wall time of the one machine all hosts share (SQLite's WAL needs that anyway).
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

namespace durable {

class Clock {
public:
    virtual ~Clock() = default;
    // Wall-clock time in milliseconds since the Unix epoch.
    virtual std::int64_t now_ms() const = 0;
    // Monotonic time, for deadlines; never goes back.
    virtual std::chrono::steady_clock::time_point steady_now() const = 0;
    // Blocks the calling thread for `d` (a fake clock advances instead of sleeping).
    virtual void sleep_for(std::chrono::nanoseconds d) = 0;
};

// The real clocks of the machine.
class SystemClock final : public Clock {
public:
    std::int64_t now_ms() const override;
    std::chrono::steady_clock::time_point steady_now() const override;
    void sleep_for(std::chrono::nanoseconds d) override;
    // A process-wide instance.
    static std::shared_ptr<Clock> instance();
};

// A clock that only moves when told to; for tests. `sleep_for` advances it at once.
class ManualClock final : public Clock {
public:
    explicit ManualClock(std::int64_t start_ms = 1'700'000'000'000);
    std::int64_t now_ms() const override;
    std::chrono::steady_clock::time_point steady_now() const override;
    void sleep_for(std::chrono::nanoseconds d) override;
    // Moves both clocks forward by `d`.
    void advance(std::chrono::nanoseconds d);
    // Total time passed to sleep_for so far.
    std::chrono::nanoseconds slept() const;

private:
    mutable std::mutex mu_;
    std::chrono::nanoseconds offset_{0};  // guarded by mu_
    std::chrono::nanoseconds slept_{0};   // guarded by mu_
    std::int64_t start_ms_;
};

}  // namespace durable
