// Real and manual clocks.
#include "durable/clock.hpp"

#include <thread>

namespace durable {

std::int64_t SystemClock::now_ms() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::chrono::steady_clock::time_point SystemClock::steady_now() const {
    return std::chrono::steady_clock::now();
}

void SystemClock::sleep_for(std::chrono::nanoseconds d) {
    if (d.count() > 0) std::this_thread::sleep_for(d);
}

std::shared_ptr<Clock> SystemClock::instance() {
    static auto clock = std::make_shared<SystemClock>();
    return clock;
}

ManualClock::ManualClock(std::int64_t start_ms) : start_ms_(start_ms) {}

std::int64_t ManualClock::now_ms() const {
    std::lock_guard lock(mu_);
    return start_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(offset_).count();
}

std::chrono::steady_clock::time_point ManualClock::steady_now() const {
    std::lock_guard lock(mu_);
    return std::chrono::steady_clock::time_point{} + std::chrono::hours(24) + offset_;
}

void ManualClock::sleep_for(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    if (d.count() <= 0) return;
    offset_ += d;
    slept_ += d;
}

void ManualClock::advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    offset_ += d;
}

std::chrono::nanoseconds ManualClock::slept() const {
    std::lock_guard lock(mu_);
    return slept_;
}

}  // namespace durable
