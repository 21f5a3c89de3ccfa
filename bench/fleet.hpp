// bench/fleet.hpp — worker processes of durable-bench (the `--role worker` of this same
// binary), spawned with posix_spawn and driven over pipes.
//
// Protocol (one line each way at a time):
//   driver -> worker stdin:  "go" (start the host), "stop" (stop it gracefully and exit);
//                            EOF on stdin also means stop.
//   worker -> driver stdout: "ready" (database open, host built), "started" (host running),
//                            "stats {json}" (its counters, whenever they change, at most
//                            every 2 ms), "final {json}" (after a graceful stop).
// Worker stderr is inherited: its logs and warnings reach the bench's stderr.
//
// Invariants: every wait has a deadline; a worker that does not stop in time is killed;
// the destructor kills and reaps every worker still running, and joins every reader
// thread. Workers die with the bench (PR_SET_PDEATHSIG in the worker), so none outlive it.
// Fleet methods are called from the driver's threads; the state of the workers is guarded
// by mu_.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench.hpp"

namespace durable::bench {

struct WorkerState {
    std::string id;
    pid_t pid = -1;
    bool ready = false, started = false, exited = false, killed = false, reaped = false;
    Json stats = Json::object();  // the last "stats" line
    Json final_stats;             // the "final" line, if it came
    int exit_status = -1;
};

class Fleet {
public:
    Fleet() = default;
    ~Fleet();
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;

    // Starts a worker host process with `args` (after the program name). Throws on failure.
    void spawn(const std::string& id, const std::vector<std::string>& args);
    std::size_t size() const { return workers_.size(); }

    // Sends a line to worker `i` (or to all).
    void send(std::size_t i, const std::string& line);
    void send_all(const std::string& line);
    // Kills worker `i` with SIGKILL, as a crash would.
    void kill(std::size_t i);

    // Waits until `pred` (called under the fleet's lock, with the workers' states) holds,
    // or `deadline` passes (false), or a worker exits unexpectedly (false, `why` says so).
    bool wait_until(const std::function<bool(const std::vector<WorkerState>&)>& pred, Clock::time_point deadline,
                    std::string* why = nullptr);
    // A copy of the workers' states.
    std::vector<WorkerState> snapshot() const;
    // Wakes waiters (after driver-side state their predicates read has changed).
    void notify();

    // Sum of "completed" over the workers' last reports.
    static std::int64_t completed(const std::vector<WorkerState>& ws);

    // Asks every live worker to stop, waits for them to exit until `deadline`, then kills
    // those still running. Returns the workers' final states.
    std::vector<WorkerState> stop_all(Clock::time_point deadline);

private:
    struct Pipes {
        int to_child = -1, from_child = -1;
    };
    void read_loop(std::size_t i, int fd);
    void reap(std::size_t i);

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<WorkerState> workers_;  // guarded by mu_ (the vector's size only grows in spawn)
    std::vector<Pipes> pipes_;          // written in spawn, closed in the destructor
    std::vector<std::thread> readers_;
};

}  // namespace durable::bench
