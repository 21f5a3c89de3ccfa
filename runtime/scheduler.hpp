// runtime/scheduler.hpp — a host's schedule thread: fires the ticks of due schedules.
//
// It sleeps until the earliest next_fire of any schedule (read from the database) or for
// `poll` at most, whichever comes first: other processes create, pause and resume schedules,
// and a buffered tick waits for an instance that finishes elsewhere, so it looks now and then
// (once a second by default) rather than trusting only what it read. A client of this process
// wakes it at once (wake()). Each look reads the due schedules, computes each one's step
// (schedule_plan.hpp) and commits it with the CAS on the schedule's version; a host that
// loses the race (conflict) drops its step: the winner's instances are the tick's.
//
// Threads: one, started by start() and joined by stop(), which returns within one store write.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <spdlog/logger.h>
#include <string>
#include <thread>

#include "durable/clock.hpp"
#include "durable/metrics.hpp"
#include "store/store.hpp"

namespace durable::detail {

class Scheduler {
public:
    struct Options {
        std::string host_id;
        std::chrono::milliseconds poll{1'000};
        int batch = 32;  // schedules looked at per step
    };
    // `started` runs (on the scheduler thread) after a step that created instances is durable.
    Scheduler(std::shared_ptr<store::Store> store, std::shared_ptr<Clock> clock, std::shared_ptr<spdlog::logger> log,
              Metrics& metrics, Options options, std::function<void()> started);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    void start();
    void stop();
    // Look at the schedules now (one was created, resumed or triggered by this process).
    void wake();

    // One look at `now`: commits the step of every due schedule; returns how many steps it
    // committed (conflicts, lost to another host, are not counted). For the loop and for tests.
    int fire_due(store::Millis now);

private:
    void loop();

    std::shared_ptr<store::Store> store_;
    std::shared_ptr<Clock> clock_;
    std::shared_ptr<spdlog::logger> log_;
    Options options_;
    std::function<void()> started_;
    Counter &m_started_, &m_skipped_, &m_missed_, &m_conflicts_, &m_looks_;

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;   // guarded by mu_
    bool woken_ = false;  // guarded by mu_
    std::thread thread_;
};

}  // namespace durable::detail
