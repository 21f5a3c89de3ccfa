// The activity worker pool: runs each activity through its resilience pipeline (timeout per
// attempt inside retry inside the circuit breaker), with shared resources from their
// providers, and hands the result back to the instance as an in-memory event.
//
// Two sources of work: activities of instances this host owns (in memory, covered by the
// instance lease: the happy path), and activity_tasks rows this host claimed because it
// registers their activity and the owning host does not (or the activity has a
// max_concurrent limit). A task row has its own lease, renewed with the host's other leases
// and extended by ActivityContext::heartbeat; its result goes to the instance's inbox in one
// transaction with the row's delete, refused if the lease was lost meanwhile. Results wait
// for the dispatcher's next claim and go in its write (Store::complete_and_claim_tasks): a
// worker's results and its next claim cost one commit.
//
// Retries here are in-process: fast, and lost if the host crashes (the activity then runs
// again from its TaskScheduled event). Durable retries, whose waits are durable timers, are
// the orchestrator's RetryPolicy.
#include <fmt/format.h>

#include "runtime/host_impl.hpp"
#include "runtime/tracing_ids.hpp"

namespace durable {

namespace ev = detail::ev;

namespace {
// True on activity workers: after the episode it runs, such a thread takes the next activity
// from the queue itself, so one activity fewer needs another worker woken.
thread_local bool t_activity_worker = false;
// True on episode workers; t_inline_activity: this episode worker's episode has just queued
// a single activity it runs itself next (nobody was woken for it).
thread_local bool t_episode_worker = false;
thread_local bool t_inline_activity = false;
}  // namespace

void Host::Impl::mark_episode_worker() {
    t_episode_worker = true;
}

void Host::Impl::dispatch_activities_locked(const std::shared_ptr<LiveInstance>& inst,
                                            const std::vector<detail::Decision>& decisions) {
    if (decisions.empty()) return;
    if (!inst->activities_token) inst->activities_token = stop_token.child();
    for (const auto& d : decisions) {
        activity_queue_.push_back(ActivityWork{inst->id, inst->execution_id, d.name, d.id, d.input, -1, 1,
                                               inst->exec ? inst->exec->info().correlation_id : inst->id, inst,
                                               inst->activities_token, Json(),
                                               inst->exec ? inst->exec->info().trace_parent : std::string(),
                                               !inst->exec || inst->exec->info().sampled});
        ++inst->inflight_activities;
    }
    std::size_t wake = decisions.size() - (t_activity_worker ? 1 : 0);
    // A lone activity decided while the host is otherwise idle (no activity running or queued,
    // no episode waiting: latency, not throughput, is what counts) runs on the episode worker
    // right after the episode: one thread hand-off fewer each way.
    if (t_episode_worker && !t_inline_activity && decisions.size() == 1 && running_activities_ == 0 &&
        activity_queue_.size() == 1 && ready_.empty()) {
        t_inline_activity = true;
        wake = 0;
    }
    for (std::size_t i = 0; i < wake; ++i) activity_cv_.notify_one();
}

void Host::Impl::run_inline_activities_locked(std::unique_lock<std::mutex>& lock) {
    while (t_inline_activity) {
        t_inline_activity = false;
        if (activities_stop_ || activity_queue_.empty()) return;  // stopping, or a worker took it
        ActivityWork work = std::move(activity_queue_.front());
        activity_queue_.pop_front();
        ++running_activities_;
        ++inline_activities_;
        if (!ready_.empty()) activity_cv_.notify_one();  // episodes waiting: an idle activity worker runs them
        lock.unlock();
        auto next = run_activity(work);
        lock.lock();
        --running_activities_;
        --inline_activities_;
        finish_task_locked(work);
        // The next episode of its instance, here (it may decide the next lone activity).
        if (next && !next->queued && !next->running && !next->dead && !workers_stop_) run_instance_locked(lock, next);
    }
}

void Host::Impl::finish_task_locked(const ActivityWork& work) {
    if (work.row_id < 0) return;
    // A task row's slot is free: the dispatcher may claim the next one now.
    held_tasks_.erase(work.row_id);
    --tasks_held_;
    if (--tasks_by_name_[work.name] <= 0) tasks_by_name_.erase(work.name);
    dispatch_requested_ = true;
    dispatch_cv_.notify_one();
}

void Host::Impl::activity_worker() {
    t_activity_worker = true;
    std::unique_lock lock(mu_);
    for (;;) {
        activity_cv_.wait(lock, [&] {
            return activities_stop_ || !activity_queue_.empty() || (inline_activities_ > 0 && !ready_.empty());
        });
        if (activities_stop_) return;
        if (activity_queue_.empty()) {
            // An episode worker runs an activity: its waiting episodes are run here meanwhile.
            auto inst = std::move(ready_.front());
            ready_.pop_front();
            inst->queued = false;
            if (!inst->dead && !inst->running && !workers_stop_) run_instance_locked(lock, inst);
            continue;
        }
        ActivityWork work = std::move(activity_queue_.front());
        activity_queue_.pop_front();
        ++running_activities_;
        lock.unlock();
        auto next = run_activity(work);
        lock.lock();
        --running_activities_;
        finish_task_locked(work);
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
        e["error"] = detail::failure_json(error);  // type, message, details, nested exceptions
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

bool Host::Impl::heartbeat_task(ActivityWork& work, const Json& details,
                                std::optional<std::chrono::steady_clock::time_point>& last) {
    auto now = clock->steady_now();
    // Spaced out (a quarter lease): the renewer keeps the lease meanwhile.
    if (last && now - *last < lease_timing.renew_every() / 2) return !work.token->cancelled();
    last = now;
    auto done = std::make_shared<std::promise<store::WriteResult>>();
    auto f = done->get_future();
    std::optional<std::string> text;
    if (!details.is_null()) text = details.dump();
    store->heartbeat_task(work.row_id, id, lease_ms(), std::move(text),
                          [done](const store::WriteResult& r) { done->set_value(r); });
    if (f.wait_for(lease_timing.fence_after()) != std::future_status::ready) return true;  // the renewer decides
    auto r = f.get();
    if (r.conflict) {
        log->info("host {}: activity task {} ('{}' of {}) is gone or taken over; cancelling its run", id, work.row_id,
                  work.name, work.instance_id);
        work.token->cancel();
        return false;
    }
    return true;
}

std::size_t Host::Impl::claim_tasks_once() {
    std::vector<store::TaskCompletion> results;
    std::vector<std::string> names;
    std::unordered_map<std::string, int> room_by_name;
    int room = 0;
    {
        std::lock_guard lock(mu_);
        results.swap(task_results_);
        // A batch per look (claim_batch, less what is queued here still): one claim write
        // carries many tasks, and the rest waits in the table, where another host may take
        // it. Limited activities get no more than their limit allows. Stopping: no claim,
        // but the results still go out.
        room = stopping_ ? 0 : std::max(0, options.claim_batch - static_cast<int>(activity_queue_.size()));
        for (const auto& n : room > 0 ? local_activity_names : std::vector<std::string>{}) {
            auto limit = max_concurrent.find(n);
            int held = 0;
            if (auto it = tasks_by_name_.find(n); it != tasks_by_name_.end()) held = it->second;
            int r = limit == max_concurrent.end() ? room : std::min(room, limit->second - held);
            if (r <= 0) continue;
            names.push_back(n);
            room_by_name[n] = r;
        }
    }
    std::vector<std::string> found;
    if (!names.empty()) found = store->claimable_task_names(names);  // a read: nothing to claim costs no write
    if (found.empty() && results.empty()) return 0;
    {
        std::lock_guard lock(mu_);
        ++task_claims_started_;
    }
    struct ClaimDone {
        Host::Impl* self;
        ~ClaimDone() {
            std::lock_guard lock(self->mu_);
            ++self->task_claims_done_;
        }
    } claim_done{this};
    std::vector<store::ClaimedTask> claimed;
    // Names without a limit share one claim; each limited name gets its own. The first claim
    // carries the buffered results: their deletes and inbox rows cost no commit of their own.
    std::vector<std::pair<std::vector<std::string>, int>> claims;
    std::vector<std::string> unlimited;
    for (const auto& n : found) {
        if (max_concurrent.count(n)) {
            claims.push_back({{n}, room_by_name[n]});
        } else {
            unlimited.push_back(n);
        }
    }
    if (!unlimited.empty()) claims.insert(claims.begin(), std::make_pair(unlimited, room));
    if (claims.empty()) claims.push_back({{}, 0});  // results only
    std::exception_ptr failure;
    for (std::size_t i = 0; i < claims.size(); ++i) {
        auto& [claim_names, limit] = claims[i];
        if (i > 0 && static_cast<int>(claimed.size()) >= room) break;
        limit = std::min(limit, room - static_cast<int>(claimed.size()));
        std::promise<std::pair<store::WriteResult, std::vector<store::ClaimedTask>>> done;
        auto f = done.get_future();
        std::vector<store::TaskCompletion> carried;
        if (i == 0) carried = std::move(results);
        std::vector<std::int64_t> carried_rows;
        for (const auto& c : carried) carried_rows.push_back(c.row_id);
        store->complete_and_claim_tasks(id, std::move(carried), claim_names, lease_ms(), limit,
                                        [&done](const store::WriteResult& r, std::vector<store::ClaimedTask> t) {
                                            done.set_value({r, std::move(t)});
                                        });
        auto [r, tasks] = f.get();
        if (!carried_rows.empty()) {
            std::unordered_set<std::int64_t> delivered(r.rows.begin(), r.rows.end());
            std::lock_guard lock(mu_);
            for (auto row : carried_rows) {
                completing_rows_.erase(row);
                if (delivered.count(row)) {
                    m_task_completions.inc();
                } else if (!r.error) {
                    log->info("host {}: the result of activity task {} was not delivered: the task was taken over or "
                              "its instance finished",
                              id, row);
                }
            }
            if (r.error) {
                log->warn("host {}: delivering the results of {} activity tasks failed; they run again after their "
                          "lease",
                          id, carried_rows.size() - delivered.size());
            }
            if (!delivered.empty()) hub->notify_progress();
        }
        for (auto& t : tasks) claimed.push_back(std::move(t));
        if (r.error) {
            failure = r.error;
            break;
        }
    }
    if (claimed.empty()) {
        if (failure) std::rethrow_exception(failure);
        return 0;
    }
    std::lock_guard lock(mu_);
    auto claimed_at = clock->steady_now();
    if (stopping_) {
        // Stopping since the claim: give the rows back at once.
        std::vector<std::int64_t> rows;
        for (auto& t : claimed) rows.push_back(t.row_id);
        store->release_tasks(id, std::move(rows), nullptr);
        return 0;
    }
    for (auto& t : claimed) {
        Json input;
        Json details;
        try {
            if (t.input) input = Json::parse(*t.input);
            if (t.heartbeat_details) details = Json::parse(*t.heartbeat_details);
        } catch (const std::exception& e) {
            log->error("host {}: activity task {} has unreadable JSON: {}", id, t.row_id, e.what());
        }
        auto token = stop_token.child();
        held_tasks_.emplace(t.row_id, HeldTask{token, claimed_at});
        ++tasks_held_;
        ++tasks_by_name_[t.name];
        bool sampled = detail::execution_sampled(t.trace_parent.value_or(std::string()), true);
        activity_queue_.push_back(ActivityWork{t.instance_id, t.execution_id, t.name, t.task_id, std::move(input),
                                               t.row_id, static_cast<int>(t.attempt), t.instance_id, {}, token,
                                               std::move(details), t.trace_parent.value_or(std::string()), sampled});
        activity_cv_.notify_one();
    }
    m_task_claims.inc(static_cast<double>(claimed.size()));
    return claimed.size();
}

std::shared_ptr<LiveInstance> Host::Impl::run_activity(ActivityWork& work) {
    auto started = std::chrono::steady_clock::now();
    std::vector<AttemptRecord> attempts;  // filled only when spans are wanted
    const bool traced = options.span_sink && work.sampled;
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
            std::optional<std::chrono::steady_clock::time_point> last_heartbeat;
            result = pipeline.execute(
                [&](const CancellationToken& token, int attempt) -> Json {
                    ActivityContext ctx(work.instance_id, work.execution_id, work.task_id, work.name, attempt, token,
                                        &registry->resources(), work.correlation_id);
                    if (work.row_id >= 0) {
                        ctx.on_heartbeat([&](const Json& details) { return heartbeat_task(work, details, last_heartbeat); },
                                         work.last_details);
                    }
                    if (traced) attempts.push_back(AttemptRecord{std::chrono::steady_clock::now(), {}, {}, {}});
                    try {
                        Json out = entry->fn(ctx, work.input);
                        if (traced) attempts.back().end = std::chrono::steady_clock::now();
                        return out;
                    } catch (...) {
                        auto err = std::current_exception();
                        std::string type = error_type_of(err);
                        count_attempt_failure(work.name, type);
                        if (traced) {
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
                work.token ? *work.token : stop_token);
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
    if (traced) trace_activity(work, took, attempts, error);
    Json event = complete_activity_event(work, result, error);
    if (work.row_id >= 0) {
        if (work.token && work.token->cancelled()) return nullptr;  // lease lost or instance gone: nothing to deliver
        // Into the instance's inbox, in one transaction with the task row's delete; refused if
        // another host holds the task now (it delivers its own result). While the dispatcher
        // runs, it writes the result with its next claim (one commit for both, and for every
        // other result meanwhile); finish_task_locked wakes it.
        store::NewMessage message{work.instance_id, now_ms(), false, event.dump()};
        {
            std::lock_guard lock(mu_);
            if (!dispatcher_stop_) {
                completing_rows_.insert(work.row_id);
                task_results_.push_back(store::TaskCompletion{work.row_id, std::move(message)});
                return nullptr;
            }
        }
        auto self = shared_from_this();
        store->complete_task(work.row_id, id, std::move(message),
                             [self, row = work.row_id, name = work.name](const store::WriteResult& r) {
                                 if (r.ok) {
                                     self->m_task_completions.inc();
                                     self->hub->notify_progress();
                                 } else if (r.conflict) {
                                     self->log->info("host {}: the result of activity task {} ('{}') was not delivered: "
                                                     "the task was taken over or its instance finished",
                                                     self->id, row, name);
                                 } else {
                                     self->log->warn("host {}: delivering the result of activity task {} failed; it "
                                                     "runs again after its lease",
                                                     self->id, row);
                                 }
                             });
        return nullptr;
    }
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
