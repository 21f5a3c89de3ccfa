// The non-template parts of SharedProvider: delay waiters, option checks and log messages
// (kept here so every provider logs the same way and the header needs no spdlog.h).
#include "durable/shared_provider.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/failure.hpp"

namespace durable {

namespace {

// Longest delay a provider accepts between attempts; beyond it a resource is as good as
// abandoned, which is more likely a unit mistake than a wish.
constexpr std::chrono::hours kMaxProviderDelay{24};

}  // namespace

DelayWaiter interruptible_delay_waiter() {
    return [](std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
              std::chrono::nanoseconds delay, const std::function<bool()>& interrupted) {
        cv.wait_for(lock, delay, interrupted);
    };
}

DelayWaiter clock_delay_waiter(std::shared_ptr<Clock> clock) {
    return [clock = std::move(clock)](std::unique_lock<std::mutex>& lock,
                                      std::condition_variable&, std::chrono::nanoseconds delay,
                                      const std::function<bool()>& interrupted) {
        if (interrupted()) return;
        lock.unlock();
        clock->sleep_for(delay);
        lock.lock();
    };
}

DelayWaiter default_delay_waiter(const std::shared_ptr<Clock>& clock) {
    // A SystemClock's sleep_for is a plain sleep that reset() and the destructor could not
    // cut short; waiting on the condition variable is the same wait, interruptible. Any other
    // clock is a test clock, whose sleep_for moves time instead of blocking.
    if (clock == nullptr || detail::waits_in_real_time(*clock))
        return interruptible_delay_waiter();
    return clock_delay_waiter(clock);
}

namespace detail {

void validate_provider_options(const SharedProviderOptions& options) {
    const auto in_range = [](std::chrono::milliseconds d) {
        return d.count() >= 0 && d <= kMaxProviderDelay;
    };
    if (!in_range(options.retry_delay) || !in_range(options.max_delay))
        throw InvalidInput(fmt::format(
            "SharedProviderOptions delays must be between 0 and 24 h (retry_delay {} ms, "
            "max_delay {} ms)",
            options.retry_delay.count(), options.max_delay.count()));
}

std::shared_ptr<spdlog::logger> provider_logger(std::shared_ptr<spdlog::logger> logger) {
    return logger ? std::move(logger) : spdlog::default_logger();
}

std::uint64_t provider_seed(std::uint64_t seed) {
    if (seed != 0) return seed;
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

void log_produced(spdlog::logger& logger, const std::string& name, std::uint64_t build) {
    logger.info("shared resource '{}' produced (build {})", name, build);
}

void log_factory_failed(spdlog::logger& logger, const std::string& name,
                        const std::exception_ptr& error, int in_a_row,
                        std::chrono::milliseconds next_delay) {
    logger.warn("shared resource '{}': factory failed ({} in a row): {}; retrying in {} ms",
                name, in_a_row, exception_message(error), next_delay.count());
}

void log_broken(spdlog::logger& logger, const std::string& name, std::uint64_t build,
                bool while_building) {
    if (while_building)
        logger.warn("shared resource '{}' reported broken before its factory returned "
                    "(build {}); discarding it and retrying",
                    name, build);
    else
        logger.warn("shared resource '{}' reported broken (build {}); rebuilding", name, build);
}

void log_reset(spdlog::logger& logger, const std::string& name) {
    logger.info("shared resource '{}' reset with new input; rebuilding", name);
}

void throw_null_resource(const std::string& name) {
    throw Error(fmt::format(
        "the factory of shared resource '{}' returned no resource; it must return one or throw",
        name));
}

std::exception_ptr broken_while_building_error(const std::string& name) {
    return std::make_exception_ptr(Error(fmt::format(
        "shared resource '{}' was reported broken before its factory returned; retrying",
        name)));
}

std::exception_ptr destroyed_error(const std::string& name) {
    return std::make_exception_ptr(Error(fmt::format(
        "shared resource '{}' was destroyed before a resource was built; nothing will be "
        "built any more",
        name)));
}

}  // namespace detail

}  // namespace durable
