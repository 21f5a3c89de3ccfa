// runtime/lease_timing.hpp — the lease arithmetic of a host, in one place.
//
// All of it runs on the host's monotonic clock (Clock::steady_now): the time a lease was last
// known good (a renewal that succeeded, a claim or load) and the time of a check must come
// from the same clock, or fencing compares two time bases. Renewal runs every half lease; a
// host fences itself (stops working on an instance) once two thirds of the lease have passed
// since the lease was last known good, before any other host may claim it.
#pragma once

#include <algorithm>
#include <chrono>

namespace durable::detail {

class LeaseTiming {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    explicit LeaseTiming(std::chrono::milliseconds lease) : lease_(lease) {}

    // How often the renewer extends the host's leases.
    duration renew_every() const { return std::chrono::duration_cast<duration>(lease_) / 2; }
    // How long after the lease was last known good the host may still work under it.
    duration fence_after() const { return std::chrono::duration_cast<duration>(lease_) * 2 / 3; }
    // True when work whose lease was last known good at `valid_from` must stop at `now`.
    bool fenced(time_point valid_from, time_point now) const { return now - valid_from > fence_after(); }
    // Time left at `now` before the fencing point of `valid_from`; zero once past it.
    duration until_fence(time_point valid_from, time_point now) const {
        return std::max(duration::zero(), fence_after() - (now - valid_from));
    }

private:
    std::chrono::milliseconds lease_;
};

}  // namespace durable::detail
