// Several real processes opening one new database file at the same moment: every process
// succeeds and every migration is applied (and recorded) exactly once.
//
// The processes are tests/programs/migrate_open. A two-pipe barrier releases them together:
// each writes a byte to READY when it is about to open the file and then blocks reading GO;
// the test closes GO once it has read a byte from every process.
#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "store/migrations.hpp"
#include "support/temp_dir.hpp"

using durable::test::TempDir;

namespace {

constexpr int kProcesses = 4;
constexpr int kRounds = 5;

// Starts `program` with `args`; its stdout and stderr go to `log`; `keep` are file
// descriptors it inherits (every other descriptor of ours is close-on-exec).
pid_t spawn(const std::string& program, const std::vector<std::string>& args, const std::vector<int>& keep,
            const std::string& log) {
    std::vector<std::string> all{program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(out >= 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Only async-signal-safe calls between fork and exec.
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        for (int fd : keep) fcntl(fd, F_SETFD, 0);
        execv(program.c_str(), argv.data());
        _exit(127);
    }
    close(out);
    return pid;
}

// The exit status of `pid`, or -1 if it had to be killed after `timeout`.
int wait_exit(pid_t pid, std::chrono::seconds timeout) {
    auto waiter = std::async(std::launch::async, [pid] {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return status;
    });
    bool killed = false;
    if (waiter.wait_for(timeout) != std::future_status::ready) {
        kill(pid, SIGKILL);
        killed = true;
    }
    int status = waiter.get();
    if (killed) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int occurrences(const std::string& text, const std::string& part) {
    int n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
    return n;
}

// Reads one byte from each of `n` processes on `fd`, bounded by `timeout`. False if some
// process died (end-of-file) or the time ran out first.
bool all_ready(int fd, int n, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int got = 0;
    while (got < n) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[16];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) return false;
        got += static_cast<int>(r);
    }
    return true;
}

}  // namespace

TEST_CASE("four processes opening a new file at the same moment apply each migration exactly once") {
    const std::string program = std::string(DURABLE_BIN_DIR) + "/migrate_open";
    REQUIRE(std::filesystem::exists(program));
    const auto& migrations = durable::store::embedded_migrations();

    for (int round = 0; round < kRounds; ++round) {
        CAPTURE(round);
        TempDir dir;
        const auto db = dir.file("race.db");
        int go[2], ready[2];
        REQUIRE(pipe2(go, O_CLOEXEC) == 0);
        REQUIRE(pipe2(ready, O_CLOEXEC) == 0);

        std::vector<pid_t> pids;
        std::vector<std::string> logs;
        for (int p = 0; p < kProcesses; ++p) {
            logs.push_back(dir.file(fmt::format("process-{}.log", p)));
            pids.push_back(spawn(program, {db, std::to_string(go[0]), std::to_string(ready[1])}, {go[0], ready[1]},
                                 logs.back()));
        }
        close(ready[1]);
        close(go[0]);
        bool ready_all = all_ready(ready[0], kProcesses, std::chrono::seconds(60));
        close(go[1]);  // go: every waiting process reads end-of-file at once
        close(ready[0]);
        CHECK(ready_all);

        std::string all_logs;
        for (int p = 0; p < kProcesses; ++p) {
            int code = wait_exit(pids[static_cast<std::size_t>(p)], std::chrono::seconds(120));
            auto log = read_file(logs[static_cast<std::size_t>(p)]);
            CHECK_MESSAGE(code == 0, "process " << p << " exited with " << code << ":\n" << log);
            all_logs += log;
        }

        SQLite::Database file(db, SQLite::OPEN_READONLY);
        std::map<int, std::string> recorded;
        SQLite::Statement q(file, "SELECT version, name, COUNT(*) OVER (PARTITION BY version) FROM schema_migrations");
        while (q.executeStep()) {
            CHECK(q.getColumn(2).getInt() == 1);
            recorded.emplace(q.getColumn(0).getInt(), q.getColumn(1).getString());
        }
        CHECK(recorded.size() == migrations.size());
        for (const auto& m : migrations) {
            CAPTURE(m.name);
            CHECK(recorded[m.version] == m.name);
            // Applied by exactly one of the processes (each logs the migrations it applied).
            CHECK(occurrences(all_logs, fmt::format("applied migration {} ", m.name)) == 1);
        }
        CHECK(file.execAndGet("SELECT COUNT(*) FROM pragma_table_info('instances') WHERE name = 'version'").getInt() ==
              1);
    }
}
