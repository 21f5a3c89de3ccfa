// Time-ordered instance ids (UUIDv7): ids created later sort later, so new instances land on
// the right edge of the B-trees instead of dirtying pages all over them.
#include <atomic>
#include <chrono>
#include <fmt/format.h>
#include <mutex>
#include <random>

#include "durable/client.hpp"

namespace durable {

std::string new_instance_id() {
    static std::mutex mu;
    static std::mt19937_64 rng{std::random_device{}()};
    static std::uint64_t last_ms = 0, counter = 0;
    std::uint64_t ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count());
    std::uint64_t rand_b, seq;
    {
        std::lock_guard lock(mu);
        // Within one millisecond a 12-bit counter keeps ids of this process increasing.
        if (ms <= last_ms) {
            ms = last_ms;
            if (++counter > 0xfff) {
                ++ms;
                counter = 0;
            }
        } else {
            counter = rng() & 0x3ff;
        }
        last_ms = ms;
        seq = counter;
        rand_b = rng();
    }
    std::uint64_t hi = (ms << 16) | 0x7000 | (seq & 0xfff);
    std::uint64_t lo = (rand_b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                       lo & 0xffffffffffffULL);
}

}  // namespace durable
