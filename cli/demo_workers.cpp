// Starting, killing and stopping the demo's worker processes.
#include "cli/demo_workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <thread>

#include "cli/common.hpp"

extern char** environ;

namespace durable::cli::demo {
namespace {

// Waits up to `timeout` for `pid` to exit and reaps it; true if it did. Uses a pidfd so the
// wait is a poll() on the process, not a sleep loop; falls back to short waitpid polls on
// kernels without pidfd_open.
bool wait_exit(WorkerProcess& w, std::chrono::milliseconds timeout) {
    if (w.exited) return true;
#ifdef SYS_pidfd_open
    int fd = static_cast<int>(syscall(SYS_pidfd_open, w.pid, 0));
    if (fd >= 0) {
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        ::close(fd);
        if (r > 0) {
            if (waitpid(w.pid, &w.wait_status, 0) == w.pid) w.exited = true;
            return w.exited;
        }
        return has_exited(w);
    }
#endif
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!has_exited(w)) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

}  // namespace

WorkerProcess spawn_worker(const std::string& db, const std::string& host_id, std::chrono::milliseconds lease,
                           const std::string& log_path) {
    WorkerProcess w;
    w.host_id = host_id;
    w.log_path = log_path;
    std::string lease_arg = fmt::format("{}ms", lease.count());
    std::vector<std::string> args = {"durable", "--db",   db, "worker", "--host-id", host_id, "--lease", lease_arg,
                                     "--exit-with-parent"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&w.pid, "/proc/self/exe", &files, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        throw Failure(fmt::format("could not start worker {} (/proc/self/exe worker): {}", host_id, std::strerror(rc)));
    }
    return w;
}

void kill_worker(WorkerProcess& w) {
    if (w.exited) return;
    ::kill(w.pid, SIGKILL);
    w.killed = true;
    wait_exit(w, std::chrono::seconds(10));
}

bool has_exited(WorkerProcess& w) {
    if (w.exited) return true;
    pid_t r = waitpid(w.pid, &w.wait_status, WNOHANG);
    if (r == w.pid) w.exited = true;
    return w.exited;
}

int stop_workers(std::vector<WorkerProcess>& workers, std::chrono::milliseconds timeout) {
    for (auto& w : workers) {
        if (!has_exited(w)) ::kill(w.pid, SIGTERM);
    }
    int forced = 0;
    for (auto& w : workers) {
        if (wait_exit(w, timeout)) continue;
        ::kill(w.pid, SIGKILL);
        w.killed = true;
        ++forced;
        wait_exit(w, std::chrono::seconds(10));
    }
    return forced;
}

std::string describe_exit(const WorkerProcess& w) {
    if (!w.exited) return "still running";
    if (WIFEXITED(w.wait_status)) return fmt::format("exit {}", WEXITSTATUS(w.wait_status));
    if (WIFSIGNALED(w.wait_status)) return fmt::format("killed by signal {}", WTERMSIG(w.wait_status));
    return "ended";
}

}  // namespace durable::cli::demo
