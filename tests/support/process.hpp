// tests/support/process.hpp — a child process for multi-process tests.
//
// A Process spawns a program (posix_spawn), gives the test its stdout as lines, lets the
// test signal it (SIGTERM, SIGSTOP / SIGCONT, SIGKILL) and reap it. Every wait is bounded
// by a timeout. The destructor kills (SIGKILL) and reaps a child that is still there, so a
// failing test never leaves a worker behind; a stopped child is killed too.
//
// Invariants: the child is reaped exactly once (by wait, kill or the destructor); after
// that, pid() stays valid for reporting but no signal is sent to it again (the pid may be
// reused). stderr of the child goes to a file when one is given, else to the test's stderr,
// so a chatty child can never fill a pipe and block.
//
// Thread safety: a Process is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace durable::test {

struct ProcessOptions {
    std::string stderr_path;  // empty: inherit the test's stderr
    std::vector<std::string> env;  // "NAME=value" entries added to (or replacing) the test's environment
};

class Process {
public:
    // Spawns `program` with `args` (argv[0] is `program`). Throws std::runtime_error when the
    // program cannot be started.
    Process(const std::string& program, const std::vector<std::string>& args, const ProcessOptions& options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }

    // The next line the child wrote to stdout (without the newline), or nullopt if none came
    // within `timeout` or stdout was closed.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    // Reads lines until one equals `line` (true) or `timeout` passes / stdout closes (false).
    bool wait_for_line(const std::string& line, std::chrono::milliseconds timeout);
    // Reads lines until one starts with `prefix`; returns it, or nullopt on timeout / EOF.
    std::optional<std::string> wait_for_prefix(const std::string& prefix, std::chrono::milliseconds timeout);

    // Sends `sig` to the child if it has not been reaped.
    void signal(int sig);
    // SIGSTOP, then waits until the kernel reports the child stopped; false on timeout.
    bool pause(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // SIGCONT.
    void resume();
    // Waits for the child to exit: its exit code, or 128 + signal if a signal ended it;
    // nullopt if it is still running after `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // SIGKILL and reap (bounded); returns as wait() does.
    std::optional<int> kill(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // True until the child has been reaped or is found to have exited.
    bool running();

private:
    bool reap(int options);  // waitpid; records the exit; true once exited

    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    int pidfd_ = -1;            // readable when the child exits (Linux >= 5.3); -1 if unavailable
    bool reaped_ = false;
    std::optional<int> exit_code_;
    std::string buffer_;        // stdout read but not yet returned as lines
    bool eof_ = false;
};

// What a child printed on stdout, line by line, and its exit code (nullopt: it had not
// finished within the time given, and was killed).
struct Finished {
    std::vector<std::string> lines;
    std::optional<int> code;
};

// Reads the child's stdout to its end and reaps it, all within `timeout`.
Finished read_to_end(Process& p, std::chrono::milliseconds timeout);

// The whole content of a file ("" if it cannot be read).
std::string read_text(const std::string& path);

}  // namespace durable::test
