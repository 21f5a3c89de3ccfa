// Worker processes: spawning, the pipe protocol, killing and reaping (see fleet.hpp).
#include "fleet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>

extern char** environ;

namespace durable::bench {

Fleet::~Fleet() {
    std::vector<std::size_t> alive;
    {
        std::lock_guard lock(mu_);
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            if (!workers_[i].reaped && workers_[i].pid > 0) {
                ::kill(workers_[i].pid, SIGKILL);
                workers_[i].killed = true;
                alive.push_back(i);
            }
        }
    }
    for (auto i : alive) reap(i);
    for (auto& p : pipes_) {
        if (p.to_child >= 0) ::close(p.to_child);
    }
    for (auto& t : readers_) t.join();  // each ends at EOF: every child is dead by now
}

void Fleet::spawn(const std::string& id, const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw Error(fmt::format("pipe failed: {}", std::strerror(errno)));
    if (::pipe2(out, O_CLOEXEC) != 0) {
        ::close(in[0]);
        ::close(in[1]);
        throw Error(fmt::format("pipe failed: {}", std::strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<std::string> argv_s;
    argv_s.push_back("durable-bench");
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    // /proc/self/exe: this very binary, wherever it was started from.
    int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
        ::close(in[1]);
        ::close(out[0]);
        throw Error(fmt::format("could not start worker process {}: {}", id, std::strerror(rc)));
    }
    std::size_t index;
    {
        std::lock_guard lock(mu_);
        WorkerState w;
        w.id = id;
        w.pid = pid;
        workers_.push_back(std::move(w));
        index = workers_.size() - 1;
    }
    pipes_.push_back(Pipes{in[1], out[0]});
    int fd = out[0];
    readers_.emplace_back([this, index, fd] { read_loop(index, fd); });
}

void Fleet::read_loop(std::size_t i, int fd) {
    FILE* f = ::fdopen(fd, "r");
    if (!f) {
        ::close(fd);
        std::lock_guard lock(mu_);
        workers_[i].exited = true;
        cv_.notify_all();
        return;
    }
    char* buf = nullptr;
    std::size_t cap = 0;
    ssize_t n;
    while ((n = ::getline(&buf, &cap, f)) > 0) {
        std::string line(buf, static_cast<std::size_t>(n));
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        std::lock_guard lock(mu_);
        auto& w = workers_[i];
        if (line == "ready") {
            w.ready = true;
        } else if (line == "started") {
            w.started = true;
        } else if (line.rfind("stats ", 0) == 0 || line.rfind("final ", 0) == 0) {
            try {
                auto j = Json::parse(line.substr(6));
                (line[0] == 's' ? w.stats : w.final_stats) = std::move(j);
                if (line[0] == 'f') w.stats = w.final_stats;
            } catch (const std::exception& e) {
                progress(fmt::format("worker {} sent a line that is not JSON ({}): {}", w.id, e.what(), line));
            }
        } else {
            progress(fmt::format("worker {}: {}", w.id, line));
        }
        cv_.notify_all();
    }
    std::free(buf);
    std::fclose(f);
    std::lock_guard lock(mu_);
    workers_[i].exited = true;
    cv_.notify_all();
}

void Fleet::send(std::size_t i, const std::string& line) {
    if (i >= pipes_.size() || pipes_[i].to_child < 0) return;
    std::string text = line + "\n";
    // A worker that died has closed its end: the write fails with EPIPE (SIGPIPE is
    // ignored by the bench), which is not an error here.
    ssize_t n = ::write(pipes_[i].to_child, text.data(), text.size());
    (void)n;
}

void Fleet::send_all(const std::string& line) {
    for (std::size_t i = 0; i < pipes_.size(); ++i) send(i, line);
}

void Fleet::kill(std::size_t i) {
    std::lock_guard lock(mu_);
    if (i >= workers_.size() || workers_[i].reaped) return;
    workers_[i].killed = true;
    ::kill(workers_[i].pid, SIGKILL);
}

bool Fleet::wait_until(const std::function<bool(const std::vector<WorkerState>&)>& pred, Clock::time_point deadline,
                       std::string* why) {
    std::unique_lock lock(mu_);
    bool lost = false;
    bool ok = cv_.wait_until(lock, deadline, [&] {
        for (const auto& w : workers_) {
            if (w.exited && !w.killed && w.final_stats.is_null()) {
                lost = true;
                if (why) *why = fmt::format("worker {} exited unexpectedly (see its messages above)", w.id);
                return true;
            }
        }
        return pred(workers_);
    });
    if (!ok && why) *why = "timed out";
    return ok && !lost;
}

std::vector<WorkerState> Fleet::snapshot() const {
    std::lock_guard lock(mu_);
    return workers_;
}

void Fleet::notify() {
    { std::lock_guard lock(mu_); }
    cv_.notify_all();
}

std::int64_t Fleet::completed(const std::vector<WorkerState>& ws) {
    std::int64_t total = 0;
    for (const auto& w : ws) total += w.stats.value("completed", std::int64_t{0});
    return total;
}

void Fleet::reap(std::size_t i) {
    pid_t pid;
    {
        std::lock_guard lock(mu_);
        if (workers_[i].reaped) return;
        pid = workers_[i].pid;
    }
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    std::lock_guard lock(mu_);
    workers_[i].reaped = true;
    workers_[i].exit_status = r == pid ? status : -1;
}

std::vector<WorkerState> Fleet::stop_all(Clock::time_point deadline) {
    send_all("stop");
    for (auto& p : pipes_) {
        if (p.to_child >= 0) {
            ::close(p.to_child);
            p.to_child = -1;
        }
    }
    {
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, deadline, [&] {
            for (const auto& w : workers_) {
                if (!w.exited) return false;
            }
            return true;
        });
        for (auto& w : workers_) {
            if (!w.exited && !w.reaped) {
                progress(fmt::format("worker {} did not stop in time; killing it", w.id));
                w.killed = true;
                ::kill(w.pid, SIGKILL);
            }
        }
    }
    // Every worker has exited or been killed: reaping returns promptly.
    for (std::size_t i = 0; i < workers_.size(); ++i) reap(i);
    return snapshot();
}

}  // namespace durable::bench
