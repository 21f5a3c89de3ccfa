// durable/shared_provider.hpp — one expensive resource (a connection, a client) shared by every
// caller and rebuilt when it breaks.
//
// A `SharedProvider<Input, Resource>` calls a factory to build the resource and hands the same
// `std::shared_ptr<Resource>` to every caller until the resource is reported broken or the
// provider is reset; then it builds a new one. `SharedResource` is its type-erased face, so the
// runtime can keep providers of different types in one map and activities can ask for
// `acquire_as<T>(resource)`.
//
// Invariants:
//   * The factory never runs concurrently with itself: one builder thread per provider,
//     started by the constructor, joined by the destructor, calls it in a loop (no recursion,
//     so endless failures do not grow the stack).
//   * While the factory fails, callers get that failure at once (the future they receive
//     holds the exception); the builder waits the retry delay, then tries again, forever,
//     until it succeeds, the input is reset or the provider is destroyed.
//   * Only the current resource can be reported broken: a report about an older resource
//     (a stale `on_broken` callback, a caller holding an old pointer) is ignored. `on_broken`
//     callbacks stay safe to call after the provider is gone.
//   * The provider drops its references to a resource when it is replaced and when the
//     provider is destroyed; callers that still hold the shared_ptr keep it alive.
//   * The destructor waits for a running factory call to return (it never abandons a thread);
//     a factory that never returns blocks it, so factories must bound their own waits.
//
// Thread safety: every method may be called from any thread at once, except that the provider
// must not be destroyed while other threads still call it, nor from inside its factory.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>

#include <spdlog/fwd.h>

#include "durable/clock.hpp"
#include "durable/errors.hpp"
#include "durable/resilience.hpp"

namespace durable {

// Plain-number snapshot of a provider's counters.
struct SharedProviderStats {
    std::uint64_t builds = 0;    // factory calls that produced a resource in use
    std::uint64_t failures = 0;  // factory calls that threw (or returned null)
    std::uint64_t broken = 0;    // resources reported broken while current
    std::uint64_t resets = 0;    // reset() calls
};

// Type-erased view of a SharedProvider.
class SharedResource {
public:
    virtual ~SharedResource() = default;
    // Blocks until a resource is built and returns it; rethrows the factory's failure if the
    // current attempt failed.
    virtual std::shared_ptr<void> acquire() = 0;
    // Tells the provider that `resource` (from acquire) is broken; ignored unless it is still
    // the current one.
    virtual void report_broken(const std::shared_ptr<void>& resource) = 0;
    // The provider's name, used in logs and as its key in the runtime.
    virtual const std::string& name() const = 0;
    // The type of what acquire() points to.
    virtual const std::type_info& type() const = 0;
    // A snapshot of the provider's counters (for the host's metrics).
    virtual SharedProviderStats stats() const = 0;
};

// acquire() cast to `T`; throws InvalidInput if the resource is not a `T`.
template <class T>
std::shared_ptr<T> acquire_as(SharedResource& resource) {
    if (resource.type() != typeid(T))
        throw InvalidInput("shared resource '" + resource.name() + "' holds a " +
                           resource.type().name() + ", not the " + typeid(T).name() +
                           " asked for; ask for the type its factory returns");
    return std::static_pointer_cast<T>(resource.acquire());
}

// How a background loop waits out a delay. Called with `lock` held on the mutex that guards
// the state `interrupted` reads; must return (with `lock` held) once `delay` has passed, or
// soon after `interrupted()` turns true and `cv` is notified. Must not throw.
using DelayWaiter =
    std::function<void(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                       std::chrono::nanoseconds delay, const std::function<bool()>& interrupted)>;

// Waits on `cv` in real time; reset and destruction cut the wait short.
DelayWaiter interruptible_delay_waiter();
// Releases the lock and calls `clock->sleep_for(delay)`; a ManualClock returns at once and
// records the delay, which makes retry loops fast and exact in tests. Not interruptible.
DelayWaiter clock_delay_waiter(std::shared_ptr<Clock> clock);
// interruptible_delay_waiter() for a SystemClock, clock_delay_waiter(clock) for any other
// (test) clock.
DelayWaiter default_delay_waiter(const std::shared_ptr<Clock>& clock);

struct SharedProviderOptions {
    // Constant: wait `retry_delay` after every failure. Exponential: `retry_delay` after the
    // first failure in a row, doubling up to `max_delay`.
    Backoff backoff = Backoff::Constant;
    std::chrono::milliseconds retry_delay{1000};
    std::chrono::milliseconds max_delay{30000};
    // Full jitter: each delay is uniform in [0, delay) instead of the delay itself.
    bool jitter = false;
    // Seed of the jitter's random generator; 0 seeds it from std::random_device.
    std::uint64_t seed = 0;
    // How the builder waits between attempts; empty means default_delay_waiter(clock).
    DelayWaiter waiter;
};

namespace detail {
void validate_provider_options(const SharedProviderOptions& options);
std::shared_ptr<spdlog::logger> provider_logger(std::shared_ptr<spdlog::logger> logger);
std::uint64_t provider_seed(std::uint64_t seed);
void log_produced(spdlog::logger& logger, const std::string& name, std::uint64_t build);
void log_factory_failed(spdlog::logger& logger, const std::string& name,
                        const std::exception_ptr& error, int in_a_row,
                        std::chrono::milliseconds next_delay);
void log_broken(spdlog::logger& logger, const std::string& name, std::uint64_t build,
                bool while_building);
void log_reset(spdlog::logger& logger, const std::string& name);
[[noreturn]] void throw_null_resource(const std::string& name);
std::exception_ptr broken_while_building_error(const std::string& name);
std::exception_ptr destroyed_error(const std::string& name);
}  // namespace detail

// Shares one `Resource`, built from an `Input` by a factory, among all callers. `Input` must
// be copyable: the builder copies it for each attempt, so reset() never races a running
// factory.
template <class Input, class Resource>
class SharedProvider final : public SharedResource {
public:
    // Builds a resource from the input. `on_broken`, callable from any thread at any time,
    // reports that this very resource broke. Throwing (or returning null) is a failed attempt.
    using Factory = std::function<std::shared_ptr<Resource>(const Input& input,
                                                            std::function<void()> on_broken)>;
    using Future = std::shared_future<std::shared_ptr<Resource>>;

    // Starts the builder thread, which calls the factory at once. Throws InvalidInput if the
    // options make no sense. A null logger means spdlog's default logger.
    SharedProvider(std::string name, Input input, Factory factory,
                   SharedProviderOptions options = {},
                   std::shared_ptr<Clock> clock = SystemClock::instance(),
                   std::shared_ptr<spdlog::logger> logger = nullptr)
        : core_(std::make_shared<Core>(std::move(name), std::move(input), std::move(factory),
                                       std::move(options), std::move(clock),
                                       std::move(logger))),
          builder_([core = core_] { core->run(); }) {}

    // Stops retrying, waits for a running factory call to return, joins the builder and drops
    // the resource. Callers still waiting on a build get a durable::Error.
    ~SharedProvider() override {
        core_->stop();
        builder_.join();
        core_->dispose();
    }

    SharedProvider(const SharedProvider&) = delete;
    SharedProvider& operator=(const SharedProvider&) = delete;

    // The resource as a future that every concurrent caller shares: ready with the resource
    // once built, ready with the exception while the factory is failing, pending while a
    // build is in flight.
    Future current() const { return core_->current(); }
    // Blocks until built and returns the resource, or rethrows the current failure.
    std::shared_ptr<Resource> get() const { return current().get(); }
    // Reports that `resource` is broken: replaced if still current, ignored otherwise.
    void report_broken(const std::shared_ptr<Resource>& resource) {
        core_->report_broken(static_cast<const void*>(resource.get()));
    }
    // Drops the current resource and builds a new one from `input`; a build in flight
    // with the old input is discarded.
    void reset(Input input) { core_->reset(std::move(input)); }
    // A snapshot of the counters.
    SharedProviderStats stats() const override { return core_->stats(); }

    std::shared_ptr<void> acquire() override { return get(); }
    void report_broken(const std::shared_ptr<void>& resource) override {
        core_->report_broken(resource.get());
    }
    const std::string& name() const override { return core_->name(); }
    const std::type_info& type() const override { return typeid(Resource); }

private:
    class Core;
    std::shared_ptr<Core> core_;
    std::thread builder_;
};

// ---------------------------------------------------------------------------------------------
// Implementation. Callers and the builder thread share a Core; `on_broken` callbacks hold it
// weakly, so they outlive the provider safely.

template <class Input, class Resource>
class SharedProvider<Input, Resource>::Core
    : public std::enable_shared_from_this<SharedProvider<Input, Resource>::Core> {
public:
    Core(std::string name, Input input, Factory factory, SharedProviderOptions options,
         std::shared_ptr<Clock> clock, std::shared_ptr<spdlog::logger> logger)
        : name_(std::move(name)),
          factory_(std::move(factory)),
          options_((detail::validate_provider_options(options), std::move(options))),
          clock_(clock ? std::move(clock) : SystemClock::instance()),
          logger_(detail::provider_logger(std::move(logger))),
          waiter_(options_.waiter ? options_.waiter : default_delay_waiter(clock_)),
          input_(std::move(input)),
          rng_(detail::provider_seed(options_.seed)) {
        if (!factory_) throw InvalidInput("shared resource '" + name_ + "' needs a factory");
        std::lock_guard lock(mu_);
        request_build_locked();
    }

    const std::string& name() const { return name_; }

    Future current() const {
        std::lock_guard lock(mu_);
        return future_;
    }

    void report_broken(const void* resource) {
        Retired retired;  // destroyed after the lock is released
        std::lock_guard lock(mu_);
        if (stopping_ || !resource_ || static_cast<const void*>(resource_.get()) != resource)
            return;
        retired = break_locked();
    }

    void broken_by_build(std::uint64_t build) {
        Retired retired;
        std::lock_guard lock(mu_);
        if (stopping_) return;
        if (build != 0 && build == building_) {
            broken_while_building_ = true;
            return;
        }
        if (!resource_ || build != resource_build_) return;  // stale: an older resource
        retired = break_locked();
    }

    void reset(Input input) {
        Retired retired;
        std::lock_guard lock(mu_);
        if (stopping_) return;
        input_ = std::move(input);
        ++input_epoch_;
        ++stats_.resets;
        consecutive_failures_ = 0;
        detail::log_reset(*logger_, name_);
        retired.resource = std::move(resource_);
        resource_build_ = 0;
        retired.future = request_build_locked();
    }

    SharedProviderStats stats() const {
        std::lock_guard lock(mu_);
        return stats_;
    }

    void stop() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
    }

    void dispose() {
        Retired retired;
        std::lock_guard lock(mu_);
        retired.resource = std::move(resource_);
        retired.future = std::move(future_);
    }

    // The builder thread's loop.
    void run() {
        Retired discard;  // declared before the lock: dropped with the lock released
        std::unique_lock lock(mu_);
        for (;;) {
            if (discard.resource || discard.future.valid()) {
                lock.unlock();
                discard = Retired{};
                lock.lock();
            }
            cv_.wait(lock, [this] { return stopping_ || build_requested_; });
            if (stopping_) break;
            build_requested_ = false;
            const std::uint64_t epoch = input_epoch_;
            const std::uint64_t build = next_build_++;
            building_ = build;
            broken_while_building_ = false;

            std::shared_ptr<Resource> built;
            std::exception_ptr error;
            {
                const Input input = input_;
                lock.unlock();
                try {
                    built = factory_(input, on_broken_for(build));
                    if (!built) detail::throw_null_resource(name_);
                } catch (...) {
                    error = std::current_exception();
                }
            }
            lock.lock();
            building_ = 0;

            if (stopping_) {
                discard.resource = std::move(built);
                break;
            }
            if (epoch != input_epoch_) {  // reset() during the build: build from the new input
                discard.resource = std::move(built);
                continue;
            }
            if (!error && broken_while_building_) {
                ++stats_.broken;
                detail::log_broken(*logger_, name_, build, true);
                discard.resource = std::move(built);
                error = detail::broken_while_building_error(name_);
            }
            if (!error) {
                resource_ = built;
                resource_build_ = build;
                consecutive_failures_ = 0;
                ++stats_.builds;
                promise_.set_value(std::move(built));
                pending_ = false;
                detail::log_produced(*logger_, name_, build);
                continue;
            }

            ++stats_.failures;
            const auto delay = next_delay_locked();
            promise_.set_exception(error);
            pending_ = false;
            detail::log_factory_failed(*logger_, name_, error, consecutive_failures_, delay);
            waiter_(lock, cv_, delay, [this] { return stopping_ || build_requested_; });
            if (stopping_) break;
            discard.future = request_build_locked();
        }
        if (pending_) {
            promise_.set_exception(detail::destroyed_error(name_));
            pending_ = false;
        }
    }

private:
    // What a critical section takes out of the provider, to be dropped once the lock is
    // released: a resource's destructor may be slow or may call back into the provider.
    struct Retired {
        std::shared_ptr<Resource> resource;
        Future future;
    };

    std::function<void()> on_broken_for(std::uint64_t build) {
        return [weak = this->weak_from_this(), build] {
            if (auto core = weak.lock()) core->broken_by_build(build);
        };
    }

    // Makes current() hand out a pending future (reusing the one in flight, if any) and wakes
    // the builder. Returns the future it replaced.
    Future request_build_locked() {
        Future replaced;
        if (!pending_) {
            promise_ = std::promise<std::shared_ptr<Resource>>();
            replaced = std::exchange(future_, promise_.get_future().share());
            pending_ = true;
        }
        build_requested_ = true;
        cv_.notify_all();
        return replaced;
    }

    Retired break_locked() {
        ++stats_.broken;
        detail::log_broken(*logger_, name_, resource_build_, false);
        Retired retired;
        retired.resource = std::move(resource_);
        resource_build_ = 0;
        retired.future = request_build_locked();
        return retired;
    }

    std::chrono::milliseconds next_delay_locked() {
        const double random01 =
            options_.jitter ? std::uniform_real_distribution<double>(0.0, 1.0)(rng_) : 0.0;
        const auto delay = backoff_delay(options_.backoff, options_.retry_delay,
                                         options_.max_delay, options_.jitter,
                                         consecutive_failures_, random01);
        if (consecutive_failures_ < 1'000'000) ++consecutive_failures_;
        return delay;
    }

    const std::string name_;
    const Factory factory_;
    const SharedProviderOptions options_;
    const std::shared_ptr<Clock> clock_;
    const std::shared_ptr<spdlog::logger> logger_;
    const DelayWaiter waiter_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    Input input_;                                      // guarded by mu_
    std::uint64_t input_epoch_ = 0;                    // guarded by mu_; bumped by reset()
    std::shared_ptr<Resource> resource_;               // guarded by mu_; null unless built
    std::uint64_t resource_build_ = 0;                 // guarded by mu_; build of resource_
    std::uint64_t building_ = 0;                       // guarded by mu_; build in flight, or 0
    bool broken_while_building_ = false;               // guarded by mu_
    std::uint64_t next_build_ = 1;                     // guarded by mu_
    std::promise<std::shared_ptr<Resource>> promise_;  // guarded by mu_; unset iff pending_
    bool pending_ = false;                             // guarded by mu_
    Future future_;                                    // guarded by mu_; what current() returns
    bool build_requested_ = false;                     // guarded by mu_
    bool stopping_ = false;                            // guarded by mu_
    int consecutive_failures_ = 0;                     // guarded by mu_
    std::mt19937_64 rng_;                              // guarded by mu_
    SharedProviderStats stats_;                        // guarded by mu_
};

}  // namespace durable
