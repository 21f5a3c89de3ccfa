// Simulated latency and deterministic failures for the example activities.
#include "orchestrations/simulation.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <mutex>

namespace durable::orchestrations {
namespace {

std::mutex label_mu;
std::string label;  // guarded by label_mu

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace

std::uint64_t stable_hash(std::string_view text, std::uint64_t seed) {
    std::uint64_t h = 14695981039346656037ULL ^ splitmix64(seed);
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return splitmix64(h);
}

double deterministic_unit(std::uint64_t seed, std::string_view key, std::int64_t task_id, int attempt) {
    std::uint64_t h = stable_hash(key, seed);
    h = splitmix64(h ^ static_cast<std::uint64_t>(task_id) * 0x100000001b3ULL);
    h = splitmix64(h ^ static_cast<std::uint64_t>(attempt));
    return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // 53 bits -> [0, 1)
}

void simulate(const ActivityContext& ctx, const Simulation& sim, std::string_view key) {
    if (sim.latency_ms > 0) {
        bool whole = ctx.cancellation().wait_for(SystemClock::instance(), std::chrono::milliseconds(sim.latency_ms));
        if (!whole) ctx.cancellation().throw_if_cancelled();
    }
    if (sim.failure_rate > 0.0 && deterministic_unit(sim.seed, key, ctx.task_id(), ctx.attempt()) < sim.failure_rate) {
        throw SimulatedFailure(fmt::format("simulated transient failure of '{}' (attempt {}, failure rate {:.2f}); "
                                           "a retry may succeed",
                                           key, ctx.attempt(), sim.failure_rate));
    }
}

bool is_transient(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const Declined&) {
        return false;
    } catch (...) {
    }
    return default_is_transient(error);
}

void set_host_label(std::string value) {
    std::lock_guard lock(label_mu);
    label = std::move(value);
}

std::string host_label() {
    {
        std::lock_guard lock(label_mu);
        if (!label.empty()) return label;
    }
    char name[256] = {0};
    gethostname(name, sizeof(name) - 1);
    return fmt::format("{}-{}", name, static_cast<long>(getpid()));
}

}  // namespace durable::orchestrations
