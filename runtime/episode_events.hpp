// runtime/episode_events.hpp — how an episode applies the events it was handed, shared by
// C++ episodes (episode.cpp) and remote ones (remote_episode.cpp).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "runtime/host_impl.hpp"

namespace durable::detail {

// What applying a batch of events left over: inbox rows consumed, inbox rows to leave in
// the inbox (redelivered on resume), in-memory events to hold while suspended, and events
// that arrived after a continue-as-new in the same batch (they belong to the next generation).
struct AppliedEvents {
    std::vector<std::int64_t> undeliver;
    std::deque<Incoming> hold;
    std::vector<Json> after_continue;
};

// Applies `events` to `ex` in order. `suspended` is the instance's state before the batch
// and after it; consumed inbox rows are appended to `consumed`.
AppliedEvents apply_events(Execution& ex, std::deque<Incoming>& events, bool& suspended,
                           std::vector<std::int64_t>& consumed, std::int64_t now);

}  // namespace durable::detail
