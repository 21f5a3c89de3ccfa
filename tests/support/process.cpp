// A child process for multi-process tests: posix_spawn, stdout lines with timeouts, signals,
// bounded waits, SIGKILL on destruction.
#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace durable::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(left);
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -1 : static_cast<int>(fd);
#else
    (void)pid;
    return -1;
#endif
}

}  // namespace

Process::Process(const std::string& program, const std::vector<std::string>& args, const ProcessOptions& options) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2 failed: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    if (!options.stderr_path.empty()) {
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, options.stderr_path.c_str(),
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
    }
    std::vector<std::string> storage;
    storage.push_back(program);
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The test's environment with the extra entries added; an extra entry replaces one of the
    // same name.
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) {
        std::string entry = *e;
        auto name = entry.substr(0, entry.find('=') + 1);
        bool replaced = false;
        for (const auto& x : options.env) replaced = replaced || x.rfind(name, 0) == 0;
        if (!replaced) env_text.push_back(std::move(entry));
    }
    for (const auto& x : options.env) env_text.push_back(x);
    std::vector<char*> envp;
    for (auto& x : env_text) envp.push_back(x.data());
    envp.push_back(nullptr);
    int rc = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        pid_ = -1;
        throw std::runtime_error("cannot start '" + program + "': " + std::strerror(rc) +
                                 "; build the test programs first (ninja test_host)");
    }
    stdout_fd_ = fds[0];
    pidfd_ = open_pidfd(pid_);
}

Process::~Process() {
    if (pid_ > 0 && !reaped_) kill(std::chrono::seconds(5));
    if (stdout_fd_ >= 0) close(stdout_fd_);
    if (pidfd_ >= 0) close(pidfd_);
}

bool Process::reap(int options) {
    if (reaped_) return true;
    int status = 0;
    pid_t r;
    do {
        r = waitpid(pid_, &status, options);
    } while (r < 0 && errno == EINTR);
    if (r == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) {
        reaped_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
    }
    if (r < 0 && errno == ECHILD) {  // reaped elsewhere: nothing more to learn
        reaped_ = true;
        return true;
    }
    return false;
}

bool Process::running() {
    return !reap(WNOHANG);
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        if (eof_) return std::nullopt;
        pollfd p{stdout_fd_, POLLIN, 0};
        int n = poll(&p, 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::nullopt;  // timeout (or a poll error: treat as nothing came)
        char chunk[4096];
        ssize_t got = ::read(stdout_fd_, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            eof_ = true;
            continue;
        }
        buffer_.append(chunk, static_cast<std::size_t>(got));
    }
}

bool Process::wait_for_line(const std::string& line, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        auto got = read_line(std::chrono::milliseconds(remaining_ms(deadline)));
        if (!got) return false;
        if (*got == line) return true;
    }
    return false;
}

std::optional<std::string> Process::wait_for_prefix(const std::string& prefix, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        auto got = read_line(std::chrono::milliseconds(remaining_ms(deadline)));
        if (!got) return std::nullopt;
        if (got->rfind(prefix, 0) == 0) return got;
    }
    return std::nullopt;
}

void Process::signal(int sig) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

bool Process::pause(std::chrono::milliseconds timeout) {
    if (pid_ <= 0 || reaped_) return false;
    ::kill(pid_, SIGSTOP);
    // The kernel reports the stop through waitpid only; there is nothing to block on with a
    // deadline, so look every millisecond (a stop takes effect within microseconds).
    auto deadline = Clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid_, &status, WUNTRACED | WNOHANG);
        if (r == pid_) {
            if (WIFSTOPPED(status)) return true;
            if (WIFEXITED(status) || WIFSIGNALED(status)) {
                reaped_ = true;
                exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                return false;
            }
        } else if (r < 0 && errno != EINTR) {
            return false;
        }
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void Process::resume() {
    signal(SIGCONT);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (reap(WNOHANG)) return exit_code_;
        int left = remaining_ms(deadline);
        if (left <= 0) return std::nullopt;
        if (pidfd_ >= 0) {
            // Readable once the child has exited; then the reap above succeeds.
            pollfd p{pidfd_, POLLIN, 0};
            poll(&p, 1, left);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, 5)));
        }
    }
}

std::optional<int> Process::kill(std::chrono::milliseconds timeout) {
    signal(SIGKILL);
    return wait(timeout);
}

Finished read_to_end(Process& p, std::chrono::milliseconds timeout) {
    Finished f;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto left = [&] {
        return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          deadline - std::chrono::steady_clock::now()));
    };
    while (std::chrono::steady_clock::now() < deadline) {
        auto line = p.read_line(left());
        if (!line) break;
        f.lines.push_back(*line);
    }
    f.code = p.wait(left());
    if (!f.code) p.kill();
    return f;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace durable::test
