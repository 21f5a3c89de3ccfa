// cli/demo_workers.hpp — the demo's worker processes: `durable worker` started from this
// very executable (/proc/self/exe), killed with SIGKILL to show a takeover, and stopped with
// SIGTERM at the end.
//
// Every wait for a process to exit is bounded; a worker that does not stop in time after
// SIGTERM is killed. Workers are started with --exit-with-parent, so they stop if the demo
// dies first.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace durable::cli::demo {

struct WorkerProcess {
    std::string host_id;
    std::string log_path;  // the worker's stdout and stderr
    pid_t pid = -1;
    bool killed = false;   // by the demo, with SIGKILL
    bool exited = false;   // reaped
    int wait_status = 0;   // from waitpid, once exited
};

// Starts `durable --db DB worker --host-id ID --lease Lms --exit-with-parent`; throws
// Failure if the process cannot be started.
WorkerProcess spawn_worker(const std::string& db, const std::string& host_id, std::chrono::milliseconds lease,
                           const std::string& log_path);
// SIGKILL, then reaps it.
void kill_worker(WorkerProcess& w);
// True (and reaped) if the process has exited on its own.
bool has_exited(WorkerProcess& w);
// SIGTERM to every running worker, then waits up to `timeout` for each; SIGKILLs the rest.
// Returns how many had to be killed.
int stop_workers(std::vector<WorkerProcess>& workers, std::chrono::milliseconds timeout);
// "exit 0", "killed by signal 9", ...
std::string describe_exit(const WorkerProcess& w);

}  // namespace durable::cli::demo
