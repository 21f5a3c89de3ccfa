// The activity worker pool: runs each activity through its resilience pipeline (timeout per
// attempt inside retry inside the circuit breaker), with shared resources from their
// providers, and hands the result back to the instance as an in-memory event.
//
// Retries here are in-process: fast, and lost if the host crashes (the activity then runs
// again from its TaskScheduled event). Durable retries, whose waits are durable timers, are
// the orchestrator's RetryPolicy.
#include <fmt/format.h>

#include "runtime/host_impl.hpp"

namespace durable {

namespace ev = detail::ev;

namespace {
// True on activity workers: after the episode it runs, such a thread takes the next activity
// from the queue itself, so one activity fewer needs another worker woken.
thread_local bool t_activity_worker = false;
}  // namespace

void Host::Impl::dispatch_activities_locked(const std::shared_ptr<LiveInstance>& inst,
                                            const std::vector<detail::Decision>& decisions) {
    if (decisions.empty()) return;
    for (const auto& d : decisions) {
        activity_queue_.push_back(ActivityWork{inst->id, inst->execution_id, d.name, d.id, d.input, -1, 1,
                                               inst->exec ? inst->exec->info().correlation_id : inst->id, inst,
                                               inst->exec ? inst->exec->info().trace_parent : std::string()});
        ++inst->inflight_activities;
    }
    std::size_t wake = decisions.size() - (t_activity_worker ? 1 : 0);
    for (std::size_t i = 0; i < wake; ++i) activity_cv_.notify_one();
}

void Host::Impl::activity_worker() {
    t_activity_worker = true;
    std::unique_lock lock(mu_);
    for (;;) {
        activity_cv_.wait(lock, [&] { return activities_stop_ || !activity_queue_.empty(); });
        if (activities_stop_) return;
        ActivityWork work = std::move(activity_queue_.front());
        activity_queue_.pop_front();
        ++running_activities_;
        lock.unlock();
        auto next = run_activity(work);
        lock.lock();
        --running_activities_;
        // The instance's next episode, here: its state is hot in this thread's cache, and no
        // episode worker has to be woken for it.
        if (next && !next->queued && !next->running && !next->dead && !workers_stop_) run_instance_locked(lock, next);
    }
}

Json Host::Impl::complete_activity_event(const ActivityWork& work, const Json& result, std::exception_ptr error) {
    if (!error && result.dump().size() > options.max_payload_bytes) {
        error = std::make_exception_ptr(TaskFailed(
            "PayloadTooLarge", fmt::format("the result of activity '{}' is larger than the {}-byte limit; return a "
                                           "reference to the data instead of the data",
                                           work.name, options.max_payload_bytes)));
    }
    Json e = ev::make(error ? ev::kTaskFailed : ev::kTaskCompleted, now_ms());
    e["id"] = work.task_id;
    e["x"] = work.execution_id;
    if (error) {
        std::string type = detail::exception_type_name(error);
        std::string details;
        try {
            std::rethrow_exception(error);
        } catch (const TaskFailed& tf) {
            type = tf.error_type();
            details = tf.details();
        } catch (...) {
        }
        if (details.size() > 4096) details.resize(4096);
        e["error"] = ev::error_json(type, detail::exception_message(error), details);
    } else {
        e["result"] = result;
    }
    return e;
}

// The error type history records for a failure (TaskFailed's own, else the exception's type).
std::string Host::Impl::error_type_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const TaskFailed& tf) {
        return tf.error_type();
    } catch (...) {
    }
    return detail::exception_type_name(error);
}

std::shared_ptr<LiveInstance> Host::Impl::run_activity(ActivityWork& work) {
    auto started = std::chrono::steady_clock::now();
    std::vector<AttemptRecord> attempts;  // filled only when spans are wanted
    const ActivityEntry* entry = registry->activity(work.name);
    Json result;
    std::exception_ptr error;
    if (!entry) {
        error = std::make_exception_ptr(TaskFailed(
            "ActivityNotRegistered",
            fmt::format("activity '{}' is not registered on host {}; register it with Registry::add_activity on "
                        "every host, or check the name",
                        work.name, id)));
    } else {
        try {
            auto& pipeline = policies.pipeline(work.name);
            result = pipeline.execute(
                [&](const CancellationToken& token, int attempt) -> Json {
                    ActivityContext ctx(work.instance_id, work.execution_id, work.task_id, work.name, attempt, token,
                                        &registry->resources(), work.correlation_id);
                    if (options.span_sink) attempts.push_back(AttemptRecord{std::chrono::steady_clock::now(), {}, {}, {}});
                    try {
                        Json out = entry->fn(ctx, work.input);
                        if (options.span_sink) attempts.back().end = std::chrono::steady_clock::now();
                        return out;
                    } catch (...) {
                        auto err = std::current_exception();
                        std::string type = error_type_of(err);
                        count_attempt_failure(work.name, type);
                        if (options.span_sink) {
                            attempts.back().end = std::chrono::steady_clock::now();
                            attempts.back().error_type = type;
                            attempts.back().error_message = detail::exception_message(err);
                        }
                        try {
                            throw;
                        } catch (const ResourceBroken& broken) {
                            ctx.report_broken(broken.resource());
                            throw;
                        }
                    }
                },
                stop_token);
        } catch (...) {
            error = std::current_exception();
        }
    }
    if (stop_token.cancelled()) return nullptr;  // the host is stopping: the activity runs again elsewhere
    m_activities.inc();
    if (error) {
        m_activity_failures.inc();
        count_activity_failure(work.name, error_type_of(error));
    }
    auto took = std::chrono::steady_clock::now() - started;
    h_activity.observe(std::chrono::duration<double>(took).count());
    if (options.span_sink) trace_activity(work, took, attempts, error);
    Json event = complete_activity_event(work, result, error);
    std::lock_guard lock(mu_);
    auto it = instances_.find(work.instance_id);
    if (it == instances_.end()) return nullptr;
    auto inst = it->second;
    if (inst->dead || inst->execution_id != work.execution_id || work.owner.lock() != inst) return nullptr;
    --inst->inflight_activities;
    inst->incoming.push_back(Incoming{std::move(event), -1});
    if (!inst->queued && !inst->running && !workers_stop_) return inst;  // run here, by the caller
    enqueue_locked(inst);
    return nullptr;
}

}  // namespace durable
