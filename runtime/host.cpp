// Host: construction, start, the documented shutdown order, and the public accessors.
#include <pthread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <random>
#include <spdlog/spdlog.h>

#include "runtime/host_impl.hpp"
#include "store/named_thread.hpp"

namespace durable {
namespace {

std::string default_host_id() {
    char name[256] = {0};
    gethostname(name, sizeof(name) - 1);
    std::random_device rd;
    return fmt::format("{}-{}-{:04x}", name, getpid(), rd() & 0xffff);
}

}  // namespace

Host::Impl::Impl(Database db_, std::shared_ptr<const Registry> registry_, HostOptions options_)
    : db(std::move(db_)),
      store(detail::DatabaseAccess::store(db)),
      hub(detail::DatabaseAccess::completions(db)),
      registry(std::move(registry_)),
      options(std::move(options_)),
      clock(options.clock ? options.clock : db.clock()),
      lease_timing(options.lease_duration),
      log(options.logger ? options.logger : spdlog::default_logger()),
      id(options.host_id.empty() ? default_host_id() : options.host_id),
      limits{options.max_history_events, options.suggest_continue_as_new_at, options.max_payload_bytes},
      policies(options.default_activity_policy, clock, log),
      m_episodes(metrics.counter("durable_episodes_total", "Orchestration episodes run")),
      m_activities(metrics.counter("durable_activities_total", "Activity executions finished")),
      m_activity_failures(metrics.counter("durable_activity_failures_total", "Activity executions that failed")),
      m_completed(metrics.counter("durable_instances_completed_total", "Instances completed")),
      m_failed(metrics.counter("durable_instances_failed_total", "Instances failed or terminated")),
      m_claims(metrics.counter("durable_lease_claims_total", "Instances claimed")),
      m_takeovers(metrics.counter("durable_lease_takeovers_total", "Instances taken over from another host")),
      m_conflicts(metrics.counter("durable_lease_conflicts_total", "Commits refused because the lease was lost")),
      m_renewals(metrics.counter("durable_lease_renewals_total", "Lease renewals")),
      m_renewal_failures(metrics.counter("durable_lease_renewal_failures_total", "Failed lease renewals")),
      m_replays(metrics.counter("durable_replays_total", "Instances rebuilt from history")),
      m_fences(metrics.counter("durable_self_fences_total", "Times the host fenced itself")),
      m_started(metrics.counter("durable_instances_started_total", "Instances started on this host")),
      m_task_claims(metrics.counter("durable_activity_task_claims_total", "Activity task rows claimed")),
      m_task_completions(metrics.counter("durable_activity_task_completions_total",
                                         "Activity task results delivered to their instance")),
      h_episode(metrics.histogram("durable_episode_seconds", "Time to run one episode")),
      h_commit(metrics.histogram("durable_commit_seconds", "Time from episode end to durable commit")),
      h_activity(metrics.histogram("durable_activity_seconds", "Time to run one activity")),
      g_cached(metrics.gauge("durable_instances_cached", "Instances in memory")),
      g_active(metrics.gauge("durable_instances_active", "Instances with work in flight")),
      g_wal_pages(metrics.gauge("durable_wal_pages", "Pages in the WAL after the last commit")),
      g_busy_wait(metrics.gauge("durable_store_busy_wait_seconds", "Time spent waiting for the database lock")) {
    if (!registry) throw InvalidInput("a Host needs a Registry; pass std::make_shared<durable::Registry>(...)");
    if (options.lease_duration.count() < 100) {
        throw InvalidInput(fmt::format("lease duration {} ms is too short; use at least 100 ms (default 10 s)",
                                       options.lease_duration.count()));
    }
    orchestration_names = registry->orchestrator_names();
    for (const auto& name : orchestration_names) {
        for (const auto& v : registry->orchestrator_versions(name)) orchestration_code.emplace_back(name, v);
    }
    for (const auto& name : registry->activity_names()) {
        local_activity_names.push_back(name);
        const auto* a = registry->activity(name);
        if (a && a->settings.policy) policies.set_policy(name, *a->settings.policy);
        if (a && a->settings.max_concurrent < 0) {
            throw InvalidInput(fmt::format("activity '{}': max_concurrent must be 0 (no limit) or more, got {}", name,
                                           a->settings.max_concurrent));
        }
        if (a && a->settings.max_concurrent > 0) {
            max_concurrent[name] = a->settings.max_concurrent;
        } else {
            direct_activities.insert(name);
        }
    }
    local_code.activity = [this](const std::string& n) { return runs_activity_directly(n); };
    local_code.orchestration = [this](const std::string& n) { return runs_orchestration(n); };
    local_code.version = [this](const std::string& n) { return this->registry->newest_version(n); };
    if (!options.trace_sampler) options.trace_sampler = Sampler::from_environment();
}

store::HostRow Host::Impl::host_row(store::Millis now, std::optional<store::Millis> stopped) const {
    store::HostRow row;
    row.id = id;
    char name[256] = {0};
    gethostname(name, sizeof(name) - 1);
    row.hostname = name;
    row.pid = static_cast<std::int64_t>(getpid());
    row.started_at = now;
    row.heartbeat_at = now;
    row.stopped_at = stopped;
    row.orchestrations = orchestration_names;
    for (const auto& c : orchestration_code) row.orchestration_versions[c.name].push_back(c.version);
    row.activities = local_activity_names;
    row.lease_ms = lease_ms();
    return row;
}

void Host::Impl::start() {
    {
        std::lock_guard lock(mu_);
        if (started_) return;
        started_ = true;
        last_renewal_ok_ = clock->steady_now();
    }
    store::HostRow row = host_row(now_ms(), std::nullopt);
    std::promise<store::WriteResult> done;
    auto f = done.get_future();
    store->heartbeat(row, [&done](const store::WriteResult& r) { done.set_value(r); });
    auto r = f.get();
    if (r.error) std::rethrow_exception(r.error);
    log->info("host {} started on {} (lease {} ms)", id, store->describe(), lease_ms());
    // Named threads show up as such in top -H, perf and gdb.
    const auto named = [](const char* name, auto body) { return durable::detail::named_thread(name, std::move(body)); };
    for (int i = 0; i < std::max(1, options.episode_threads); ++i) {
        episode_threads_.push_back(named("durable-episode", [this] { episode_worker(); }));
    }
    for (int i = 0; i < std::max(1, options.activity_threads); ++i) {
        activity_threads_.push_back(named("durable-act", [this] { activity_worker(); }));
    }
    dispatcher_thread_ = named("durable-disp", [this] { dispatcher_loop(); });
    // Work other processes commit wakes the dispatcher at once (where the store can tell);
    // its polls remain the fallback.
    unsigned kinds = store::kWorkInbox;
    if (!orchestration_names.empty() || registry->default_orchestrator()) kinds |= store::kWorkInstances;
    if (!local_activity_names.empty()) kinds |= store::kWorkTasks;
    work_subscription_ = store->subscribe_work(kinds, [this] { wake_dispatcher(); });
    renewer_thread_ = named("durable-renew", [this] { renewer_loop(); });
    if (options.run_schedules) {
        detail::Scheduler::Options so;
        so.host_id = id;
        so.poll = options.schedule_poll_interval;
        // Instances a tick created are for any host; this one looks for them at once.
        scheduler = std::make_unique<detail::Scheduler>(store, clock, log, metrics, so, [this] { wake_dispatcher(); });
        scheduler->start();
    }
}

void Host::Impl::stop(bool graceful) {
    {
        std::lock_guard lock(mu_);
        if (!started_ || stopped_) return;
        stopped_ = true;
        stopping_ = true;  // 1. no new work is taken
        dispatcher_stop_ = true;
    }
    dispatch_cv_.notify_all();
    if (work_subscription_) store->unsubscribe_work(*work_subscription_);
    if (scheduler) scheduler->stop();  // 1. no schedule ticks are fired either
    if (dispatcher_thread_.joinable()) dispatcher_thread_.join();
    {
        // 2. running episodes finish; queued ones are abandoned.
        std::lock_guard lock(mu_);
        workers_stop_ = true;
        activities_stop_ = true;
    }
    stop_token.cancel();  // in-flight activities see cancellation
    work_cv_.notify_all();
    activity_cv_.notify_all();
    for (auto& t : episode_threads_) t.join();
    // 3. activity workers end after their current activity (its result is dropped).
    for (auto& t : activity_threads_) t.join();
    episode_threads_.clear();
    activity_threads_.clear();
    if (auto* remote = registry->default_orchestrator()) {
        // Remote steps still out, or answered and not applied, are given up: their answers
        // are refused; the next owner sends the step again.
        std::lock_guard lock(mu_);
        for (auto& [iid, inst] : instances_) {
            if (inst->step_out) remote->withdraw(iid);
            if (inst->reply && inst->reply->applied) inst->reply->applied(false, "the host is stopping");
            inst->reply.reset();
        }
    }
    if (graceful) {
        // 4. every commit is submitted (lingering ones too) and durable. No thread runs an
        // episode now, so the lingering commits are this thread's to submit.
        std::vector<std::shared_ptr<LiveInstance>> lingering;
        {
            std::lock_guard lock(mu_);
            for (auto& [iid, inst] : instances_) {
                if (!inst->dead && inst->lingering) lingering.push_back(inst);
            }
        }
        for (auto& inst : lingering) flush_lingering(inst);
        store->flush();
        // 5. leases go back: at once claimable where work was in flight.
        std::vector<std::string> idle, busy;
        {
            std::lock_guard lock(mu_);
            for (auto& [iid, inst] : instances_) {
                if (inst->dead) continue;
                bool work = inst->inflight_activities > 0 || !inst->incoming.empty() || !inst->held.empty() ||
                            inst->pending_commits > 0 || inst->needs_episode || inst->step_out || inst->reply ||
                            !inst->step_consumed.empty() ||
                            // remote code: events applied but not committed (a step the stop refused)
                            (inst->exec && (inst->exec->has_new_history() || inst->exec->remote_step_due()));
                (work ? busy : idle).push_back(iid);
            }
            // Claimed, not loaded: the dispatcher stopped first. They have work waiting.
            for (auto& [iid, orphaned] : claimed_) busy.push_back(iid);
            claimed_.clear();
        }
        std::promise<void> a, b;
        std::promise<void> t;
        store->release_leases(id, idle, false, [&a](const store::WriteResult&) { a.set_value(); });
        store->release_leases(id, busy, true, [&b](const store::WriteResult&) { b.set_value(); });
        // With no ids: the activity tasks it held go back to the pool (their runs were cancelled).
        store->release_leases(id, {}, false, [&t](const store::WriteResult&) { t.set_value(); });
        a.get_future().wait();
        b.get_future().wait();
        t.get_future().wait();
        log->info("host {} released {} idle and {} busy leases", id, idle.size(), busy.size());
    }
    {
        std::lock_guard lock(mu_);
        renewer_stop_ = true;
    }
    renew_cv_.notify_all();
    if (renewer_thread_.joinable()) renewer_thread_.join();  // 6. renewer stops
    if (graceful) {
        store->heartbeat(host_row(now_ms(), now_ms()), nullptr);
        store->flush();
    }
    std::unordered_map<std::string, std::shared_ptr<LiveInstance>> dropped;
    {
        std::lock_guard lock(mu_);
        dropped.swap(instances_);
        ready_.clear();
    }
    dropped.clear();  // coroutine frames are destroyed here, outside the lock
    log->info("host {} stopped", id);
}

Host::Host(Database db, std::shared_ptr<const Registry> registry, HostOptions options)
    : impl_(std::make_shared<Impl>(std::move(db), std::move(registry), std::move(options))) {}

Host::~Host() {
    try {
        impl_->stop(true);
    } catch (const std::exception& e) {
        impl_->log->error("host {}: stop failed: {}", impl_->id, e.what());
    }
}

void Host::start() {
    impl_->start();
}

void Host::stop() {
    impl_->stop(true);
}

void Host::abandon() {
    impl_->stop(false);
}

const std::string& Host::id() const {
    return impl_->id;
}

Client Host::client() {
    Client c(impl_->db);
    auto a = std::make_shared<detail::ClientAttachment>();
    a->host = impl_;
    c.attachment_ = std::move(a);
    return c;
}

HostStats Host::stats() const {
    HostStats s;
    auto& i = *impl_;
    s.episodes = i.m_episodes.value();
    s.activities = i.m_activities.value();
    s.completed = i.m_completed.value();
    s.failed = i.m_failed.value();
    s.claims = i.m_claims.value();
    s.takeovers = i.m_takeovers.value();
    s.lease_conflicts = i.m_conflicts.value();
    s.renewals = i.m_renewals.value();
    s.replays = i.m_replays.value();
    std::lock_guard lock(i.mu_);
    s.cached = i.instances_.size();
    for (auto& [id, inst] : i.instances_) {
        if (inst->inflight_activities > 0 || inst->running || inst->queued || inst->pending_commits > 0) ++s.active;
    }
    return s;
}

Metrics& Host::metrics() {
    return impl_->metrics;
}

std::string Host::metrics_text() {
    auto& i = *impl_;
    auto st = i.store->stats();
    i.g_wal_pages.set(static_cast<double>(st.wal_pages));
    i.g_busy_wait.set(static_cast<double>(st.busy_wait_us) / 1e6);
    PrometheusWriter out;
    i.metrics.write(out);

    out.family("durable_host_info", "This process's host id (value 1)", "gauge");
    out.sample("durable_host_info", {{"host", i.id}}, std::int64_t{1});
    auto ready = readiness();
    out.gauge("durable_host_ready", "1 when the host is ready (see /readyz)", ready.ready ? 1.0 : 0.0);

    // The store.
    out.counter("durable_store_commits_total", "Write transactions committed (group commits)", st.commits);
    out.counter("durable_store_writes_total", "Writes carried by those transactions (writes / commits = batch size)",
                st.ops);
    out.gauge("durable_store_commit_batch_size", "Average writes per committed transaction",
              st.commits > 0 ? static_cast<double>(st.ops) / static_cast<double>(st.commits) : 0.0);
    out.gauge("durable_store_wal_bytes", "Size of the WAL after the last commit, in bytes",
              static_cast<double>(st.wal_bytes));
    out.counter("durable_store_checkpoints_total", "WAL checkpoints that ran to the end", st.checkpoints);
    out.family("durable_store_checkpoint_seconds_total", "Time spent in WAL checkpoints", "counter");
    out.sample("durable_store_checkpoint_seconds_total", {}, static_cast<double>(st.checkpoint_us) / 1e6);

    // Resilience, per activity (bounded: one pipeline per registered activity name).
    auto rs = i.policies.stats();
    out.counter("durable_resilience_retries_total", "In-process activity retries", static_cast<std::int64_t>(rs.retries));
    out.counter("durable_resilience_timeouts_total", "Activity attempts that timed out",
                static_cast<std::int64_t>(rs.timeouts));
    out.counter("durable_breaker_opened_total", "Circuit breakers opened", static_cast<std::int64_t>(rs.breaker_opened));
    out.counter("durable_breaker_rejected_total", "Calls refused by an open circuit",
                static_cast<std::int64_t>(rs.rejected_by_breaker));
    struct PerActivity {
        std::string name;
        ResilienceStats stats;
        std::optional<CircuitBreaker::State> state;
    };
    std::vector<PerActivity> per;
    i.policies.for_each([&](const ResiliencePipeline& p) {
        PerActivity a{p.name(), p.stats(), std::nullopt};
        if (const auto* b = p.breaker()) a.state = b->state();
        per.push_back(std::move(a));
    });
    out.family("durable_activity_retries_total", "In-process retries, by activity", "counter");
    for (const auto& a : per) {
        out.sample("durable_activity_retries_total", {{"activity", a.name}}, static_cast<std::int64_t>(a.stats.retries));
    }
    out.family("durable_activity_timeouts_total", "Activity attempts that timed out, by activity", "counter");
    for (const auto& a : per) {
        out.sample("durable_activity_timeouts_total", {{"activity", a.name}}, static_cast<std::int64_t>(a.stats.timeouts));
    }
    out.family("durable_breaker_state", "Circuit breaker state by activity: 1 for the current state", "gauge");
    for (const auto& a : per) {
        if (!a.state) continue;
        for (auto [state, label] : {std::pair{CircuitBreaker::State::Closed, "closed"},
                                    std::pair{CircuitBreaker::State::Open, "open"},
                                    std::pair{CircuitBreaker::State::HalfOpen, "half_open"}}) {
            out.sample("durable_breaker_state", {{"activity", a.name}, {"state", label}},
                       std::int64_t{*a.state == state ? 1 : 0});
        }
    }

    // Shared providers.
    const auto& resources = i.registry->resources();
    out.family("durable_shared_provider_builds_total", "Resources a shared provider built", "counter");
    for (const auto& [name, r] : resources) {
        out.sample("durable_shared_provider_builds_total", {{"provider", name}}, static_cast<std::int64_t>(r->stats().builds));
    }
    out.family("durable_shared_provider_failures_total", "Factory calls of a shared provider that failed", "counter");
    for (const auto& [name, r] : resources) {
        out.sample("durable_shared_provider_failures_total", {{"provider", name}},
                   static_cast<std::int64_t>(r->stats().failures));
    }
    out.family("durable_shared_provider_broken_total", "Resources reported broken", "counter");
    for (const auto& [name, r] : resources) {
        out.sample("durable_shared_provider_broken_total", {{"provider", name}}, static_cast<std::int64_t>(r->stats().broken));
    }

    // The process's event distributor and change feed (present once something watches).
    auto feed = i.db.change_feed_stats();
    if (feed.running) {
        auto ds = i.db.events()->stats();
        out.gauge("durable_events_subscribers", "Open event subscriptions in this process",
                  static_cast<double>(ds.subscribers));
        out.counter("durable_events_published_total", "Events published to watchers", static_cast<std::int64_t>(ds.published));
        out.family("durable_events_dropped_total", "Events watchers lost, by where", "counter");
        out.sample("durable_events_dropped_total", {{"where", "input"}}, static_cast<std::int64_t>(ds.input_dropped));
        out.sample("durable_events_dropped_total", {{"where", "subscriber"}}, static_cast<std::int64_t>(ds.subscriber_dropped));
        out.sample("durable_events_dropped_total", {{"where", "feed"}}, static_cast<std::int64_t>(ds.source_lost));
        out.counter("durable_events_disconnected_total", "Subscriptions closed because their queue was full",
                    static_cast<std::int64_t>(ds.disconnected));
        out.counter("durable_change_feed_rows_total", "Change-feed rows this process read",
                    static_cast<std::int64_t>(feed.rows_read));
        out.counter("durable_change_feed_gaps_total", "Change-feed rows pruned before this process read them",
                    static_cast<std::int64_t>(feed.rows_lost));
    }
    return out.take();
}

Readiness Host::readiness() const {
    auto& i = *impl_;
    Readiness r;
    auto now = i.clock->steady_now();
    const auto fence_after = std::chrono::duration_cast<std::chrono::milliseconds>(i.lease_timing.fence_after());
    {
        std::lock_guard lock(i.mu_);
        if (!i.started_) r.problems.push_back("the host has not started");
        if (i.stopped_) r.problems.push_back("the host is stopped");
        if (i.started_ && !i.stopped_) {
            auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - i.last_renewal_ok_);
            if (i.lease_timing.fenced(i.last_renewal_ok_, now)) {
                r.problems.push_back(fmt::format("no lease renewal has succeeded for {} ms (fencing point: {} ms)",
                                                 since.count(), fence_after.count()));
            }
            if (now < i.fenced_until_) {
                r.problems.push_back(fmt::format(
                    "the host fenced itself (or woke past its fencing point) recently; ready again in {} ms if renewals "
                    "succeed",
                    std::chrono::duration_cast<std::chrono::milliseconds>(i.fenced_until_ - now).count()));
            }
        }
    }
    try {
        i.store->probe();
    } catch (const std::exception& e) {
        r.problems.push_back(fmt::format("database: {}", e.what()));
    }
    r.ready = r.problems.empty();
    return r;
}

Database Host::database() const {
    return impl_->db;
}

}  // namespace durable
