// The worker role: one host process on the shared database, driven by W4 / W5 over its
// stdin and stdout (protocol in fleet.hpp).
//
// The reporter thread prints the host's counters whenever they change, at most every 2 ms,
// so the driver learns of completions within a few milliseconds without reading the
// database. Lines are written with one write(2) each under out_mu, so they never interleave.
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <condition_variable>
#include <fmt/format.h>
#include <iostream>
#include <mutex>
#include <thread>

#include "bench.hpp"
#include "orchestrations.hpp"

namespace durable::bench {
namespace {

std::mutex out_mu;

void say(const std::string& line) {
    std::lock_guard lock(out_mu);
    std::string text = line + "\n";
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(1, p, left);
        if (n <= 0) return;  // the driver is gone; PR_SET_PDEATHSIG ends this process
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

Json counters(Host& host) {
    auto s = host.stats();
    return Json{{"host", host.id()},       {"completed", s.completed}, {"active", s.active},
                {"episodes", s.episodes},  {"activities", s.activities}, {"claims", s.claims},
                {"takeovers", s.takeovers}, {"lease_conflicts", s.lease_conflicts}};
}

}  // namespace

int run_worker(const WorkerOptions& wo) {
    // Die with the bench: a worker must never outlive the run that started it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 1;
    if (wo.exec_log) set_execution_log(*wo.exec_log);
    set_host_label(wo.host_id);

    Options o;
    o.sync = wo.sync;
    o.lease = wo.lease;
    Database db = open_database(o, wo.db);
    auto registry = make_registry();
    if (wo.only == "activities") {
        registry = std::make_shared<Registry>(registry->filtered([](bool orchestrator, const std::string&) {
            return !orchestrator;
        }));
    }
    Host host(db, registry, host_options(o, wo.host_id));
    say("ready");

    std::mutex mu;
    std::condition_variable cv;
    bool stop_reporter = false;  // guarded by mu
    std::thread reporter;
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "go" && !reporter.joinable()) {
            host.start();
            say("started");
            reporter = std::thread([&] {
                std::string last;
                std::unique_lock lock(mu);
                while (!cv.wait_for(lock, std::chrono::milliseconds(2), [&] { return stop_reporter; })) {
                    std::string now = counters(host).dump();
                    if (now != last) {
                        say("stats " + now);
                        last = std::move(now);
                    }
                }
            });
        } else if (line == "stop") {
            break;
        }
    }
    if (reporter.joinable()) {
        {
            std::lock_guard lock(mu);
            stop_reporter = true;
        }
        cv.notify_all();
        reporter.join();
    }
    host.stop();
    Json final_stats = host_stats_json(host, db);
    Json last = counters(host);
    for (auto it = last.begin(); it != last.end(); ++it) final_stats[it.key()] = it.value();
    final_stats["cpu_seconds"] = std::round(process_cpu_seconds() * 1e4) / 1e4;
    say("final " + final_stats.dump());
    return 0;
}

}  // namespace durable::bench
