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

// The instance status an execution's state stands for (suspension is the host's, not the code's).
inline Status status_of(Execution::State s, bool suspended) {
    switch (s) {
        case Execution::State::Completed: return Status::Completed;
        case Execution::State::Failed: return Status::Failed;
        case Execution::State::Terminated: return Status::Terminated;
        case Execution::State::NotStarted: return Status::Pending;
        default: return suspended ? Status::Suspended : Status::Running;
    }
}

// Applies `events` to `ex` in order. `suspended` is the instance's state before the batch
// and after it; consumed inbox rows are appended to `consumed`.
AppliedEvents apply_events(Execution& ex, std::deque<Incoming>& events, bool& suspended,
                           std::vector<std::int64_t>& consumed, std::int64_t now);

}  // namespace durable::detail
