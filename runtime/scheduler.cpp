// The schedule thread of a host: looks for due schedules and commits their steps.
#include "runtime/scheduler.hpp"

#include <pthread.h>

#include <algorithm>
#include <future>

#include "runtime/schedule_plan.hpp"
#include "store/named_thread.hpp"

namespace durable::detail {

Scheduler::Scheduler(std::shared_ptr<store::Store> store, std::shared_ptr<Clock> clock,
                     std::shared_ptr<spdlog::logger> log, Metrics& metrics, Options options,
                     std::function<void()> started)
    : store_(std::move(store)),
      clock_(std::move(clock)),
      log_(std::move(log)),
      options_(std::move(options)),
      started_(std::move(started)),
      m_started_(metrics.counter("durable_schedule_instances_started_total",
                                 "Instances this host started for schedule ticks")),
      m_skipped_(metrics.counter("durable_schedule_ticks_skipped_total",
                                 "Schedule ticks this host skipped by the overlap policy")),
      m_missed_(metrics.counter("durable_schedule_ticks_missed_total",
                                "Schedule ticks this host found older than their catch-up window")),
      m_conflicts_(metrics.counter("durable_schedule_conflicts_total",
                                   "Schedule steps another host (or a client) committed first")),
      m_looks_(metrics.counter("durable_schedule_looks_total", "Times this host looked for due schedules")) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
    std::lock_guard lock(mu_);
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = durable::detail::named_thread("durable-sched", [this] { loop(); });
}

void Scheduler::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Scheduler::wake() {
    {
        std::lock_guard lock(mu_);
        woken_ = true;
    }
    cv_.notify_all();
}

int Scheduler::fire_due(store::Millis now) {
    m_looks_.inc();
    int committed = 0;
    bool created = false;
    auto running = [this](const std::string& id) {
        auto row = store_->get_instance(id);
        return row && !store::is_terminal(row->status);
    };
    const std::string actor = "scheduler@" + options_.host_id;
    for (const auto& row : store_->due_schedules(now, options_.batch)) {
        auto step = plan_schedule_step(row, now, running, actor);
        if (!step) continue;
        const auto skipped = step->row.skipped - row.skipped, missed = step->row.missed - row.missed;
        std::promise<store::WriteResult> done;
        auto f = done.get_future();
        store_->update_schedule(*step, [&done](const store::WriteResult& r) { done.set_value(r); });
        auto r = f.get();
        if (r.error) std::rethrow_exception(r.error);
        if (r.conflict) {
            m_conflicts_.inc();
            continue;
        }
        ++committed;
        m_started_.inc(static_cast<std::int64_t>(r.ids.size()));
        m_skipped_.inc(skipped);
        m_missed_.inc(missed);
        if (missed > 0) {
            log_->warn("schedule {}: {} tick(s) older than its catch-up window of {} ms were skipped", row.id, missed,
                       row.catchup_window_ms);
        }
        if (step->row.paused && !row.paused) log_->error("schedule {}: {}", row.id, step->row.note.value_or(""));
        created = created || !r.ids.empty();
    }
    if (created && started_) started_();
    return committed;
}

void Scheduler::loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
        woken_ = false;
        lock.unlock();
        auto wait = options_.poll;
        try {
            // Steps that hit a limit (many due schedules, a long catch-up) go on at once.
            int steps = fire_due(clock_->now_ms());
            if (steps >= options_.batch) {
                wait = std::chrono::milliseconds(0);
            } else if (auto next = store_->next_schedule_fire()) {
                auto until = std::chrono::milliseconds(std::max<std::int64_t>(0, *next - clock_->now_ms()));
                wait = std::min(wait, until);
            }
        } catch (const std::exception& e) {
            log_->warn("host {}: firing schedules failed (tried again in {} ms): {}", options_.host_id,
                       options_.poll.count(), e.what());
        }
        lock.lock();
        if (wait.count() > 0) cv_.wait_for(lock, wait, [this] { return stop_ || woken_; });
    }
}

}  // namespace durable::detail
