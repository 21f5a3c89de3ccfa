// runtime/async_waits.hpp — waits that cost no thread: Client::on_completion and the
// asynchronous schedule's follow-ups run here.
//
// One thread per process-wide completion hub (started at the first asynchronous wait) runs
// every wait's `check`: at once when the wait is added, whenever its instance is notified
// (a commit of this process finished it), at growing poll intervals (commits of other
// processes are only seen by looking), and at its deadline. A check returns true when the
// wait is over (it has told its caller); it is then forgotten. When the hub goes away, the
// waits still open get one last check with WakeReason::Closing.
//
// The thread's state is shared with the thread itself, so the hub may be destroyed from a
// callback that runs on that thread (a callback that held the last handle to the database).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace durable::detail {

enum class WakeReason {
    Added,     // the wait was just added
    Notified,  // a commit of this process finished its instance
    Poll,      // its poll interval passed
    Deadline,  // its deadline passed: the check must end the wait
    Closing,   // the hub is going away: the check must end the wait
};

class AsyncWaits {
public:
    AsyncWaits();
    ~AsyncWaits();  // ends the open waits (WakeReason::Closing) and joins the thread
    AsyncWaits(const AsyncWaits&) = delete;
    AsyncWaits& operator=(const AsyncWaits&) = delete;

    // Longest interval between two polls of one wait.
    static constexpr std::chrono::milliseconds kMaxPoll{500};

    // Adds a wait for instance `id`: `check` runs on the waits' thread as described above,
    // first polled `first_poll` after it is added (the interval doubling up to kMaxPoll).
    void add(std::string id, std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds first_poll,
             std::function<bool(WakeReason)> check);
    // Runs the checks of every wait for `id` (its instance has finished).
    void notify(const std::string& id);
    // Runs `job` on the waits' thread.
    void post(std::function<void()> job);
    // Waits open now (for tests and metrics).
    std::size_t open() const;

private:
    struct State;
    static void start_locked(const std::shared_ptr<State>& state);  // under state->mu
    static void run(const std::shared_ptr<State>& state);
    std::shared_ptr<State> state_;
};

}  // namespace durable::detail
