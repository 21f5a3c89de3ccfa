// runtime/completion_hub.hpp — tells waiting clients of one process that an instance finished.
//
// The host notifies after the finishing commit is durable; Client::wait_for_completion waits
// here instead of polling the database (it still looks at the database now and then, for
// instances finished by other processes).
//
// Each notification wakes only the threads waiting for that instance (or, for progress, the
// watchers): with many clients waiting at once, a shared condition variable woke every one
// of them on every commit, each only to go back to sleep.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "runtime/async_waits.hpp"

namespace durable::detail {

class CompletionHub {
public:
    void notify(const std::string& id);
    // Blocks until `id` is notified (true) or `deadline` passes (false).
    bool wait(const std::string& id, std::chrono::steady_clock::time_point deadline);
    // Forgets that `id` finished: an instance of that id was started anew (or the note was
    // stale), so waiters wait again.
    void forget(const std::string& id);
    // Bumps on every commit of the host (watchers wake on it).
    void notify_progress();
    std::uint64_t progress() const;
    bool wait_progress(std::uint64_t seen, std::chrono::steady_clock::time_point deadline);
    // Waits that cost no thread (Client::on_completion): notify(id) runs their checks too.
    AsyncWaits& async() { return async_; }

private:
    static constexpr std::size_t kRemembered = 100'000;
    // The threads waiting for one instance; erased by the last of them to leave.
    struct Waiters {
        std::condition_variable cv;
        int count = 0;  // guarded by mu_
    };
    mutable std::mutex mu_;
    std::condition_variable progress_cv_;
    std::unordered_map<std::string, std::unique_ptr<Waiters>> waiting_;  // guarded by mu_
    std::unordered_set<std::string> finished_;  // guarded by mu_
    std::deque<std::string> order_;             // guarded by mu_ (eviction order)
    std::uint64_t progress_ = 0;                // guarded by mu_
    AsyncWaits async_;                          // thread-safe itself
};

}  // namespace durable::detail
