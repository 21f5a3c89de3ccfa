// The dispatcher: finds work for this host and hands it to the episode workers.
//
// It wakes when told (a new instance adopted, a timer created, an activity task's result to
// write, another process committed work this host wants: Store::subscribe_work), when the
// earliest timer it knows of is due, when a lingering commit is due (no database work then),
// and, as the fallback for stores that cannot tell and for lost wake-ups, to look: 1 ms
// after a look that found work, backing off to poll_interval while none comes. Each look:
// adopt instances created leased to this host; load the instances its last claims got (their
// rows in one read: Store::load_instances); deliver visible inbox rows of instances this host
// holds (only rows new since the last read, where the store can tell: store::InboxCursor);
// claim free or orphaned instances of the orchestrations it registers (a random share of the
// candidates, so hosts racing for the same work spread out; the claim is not waited for, its
// commit joins the episodes'); claim activity tasks of the activities it registers, as many as
// its workers have room for, in one write with the results of the tasks that finished since
// the last look; evict idle instances. Instances cached while they wait do not count against
// max_active_instances. Instances of names this host lacks are never claimed: they wait
// (Pending) for a
// host that registers them.
#include <algorithm>
#include <fmt/format.h>
#include <random>

#include "runtime/host_impl.hpp"

namespace durable {

namespace ev = detail::ev;

namespace {

// Nothing running, queued, in flight or waiting to be written: an instance only kept in
// memory (it may be evicted, and it does not count against max_active_instances). Under mu_.
bool is_idle(const LiveInstance& inst) {
    return !inst.running && !inst.queued && inst.incoming.empty() && inst.held.empty() &&
           inst.inflight_activities == 0 && inst.pending_commits == 0 && !inst.needs_episode && !inst.step_out &&
           !inst.reply && inst.step_consumed.empty() &&
           !(inst.exec && (inst.exec->has_new_history() || inst.exec->remote_step_due()));
}

}  // namespace

void Host::Impl::wake_dispatcher() {
    {
        std::lock_guard lock(mu_);
        dispatch_requested_ = true;
    }
    dispatch_cv_.notify_one();
}

void Host::Impl::adopt_created(const store::NewInstance& created, std::int64_t inbox_id, Json start_event) {
    // Everything a load from the database would find is known here: version 0, no history,
    // one inbox row (the start event). No read, no dispatcher round trip.
    auto inst = std::make_shared<LiveInstance>();
    inst->id = created.id;
    inst->name = created.name;
    inst->execution_id = created.execution_id;
    inst->parent_id = created.parent_id;
    inst->parent_task_id = created.parent_task_id;
    inst->version = 0;
    inst->status = Status::Pending;
    inst->next_seq = 0;
    inst->loaded_at = inst->last_active = clock->steady_now();
    detail::ExecutionInfo info{created.id, created.name, created.execution_id, created.parent_id,
                               created.parent_task_id, {}, {}};
    info.version = created.orchestration_version.value_or(registry->newest_version(created.name).value_or(""));
    if (!created.orchestration_version) inst->pin_version = info.version;
    inst->exec = std::make_unique<detail::Execution>(*registry, info, limits, log);
    std::lock_guard lock(mu_);
    if (stopping_ || instances_.count(created.id)) return;  // the lease lapses / it is here already
    instances_[created.id] = inst;
    if (!delivered_inbox_.count(inbox_id)) {
        delivered_inbox_.insert(inbox_id);
        inst->delivered.push_back(inbox_id);
        inst->incoming.push_back(Incoming{std::move(start_event), inbox_id});
    }
    enqueue_locked(inst);
    m_started.inc();
}

void Host::Impl::dispatcher_loop() {
    using steady = std::chrono::steady_clock;
    auto last_sweep = steady::now();
    auto next_poll = steady::now();
    // Work from other processes is only seen by looking. After a look that found work the
    // next comes 1 ms later, then 2, 4, ... up to poll_interval: a busy host sees new work at
    // once, an idle one costs next to nothing.
    auto idle_wait = std::chrono::milliseconds(1);
    std::unique_lock lock(mu_);
    while (!dispatcher_stop_) {
        // Lingering commits that are due: cheap, no database work.
        auto linger_wake = due_lingering_locked(steady::now());
        bool timer_due = !timers_.empty() && timers_.top() <= now_ms();
        if (dispatch_requested_ || !to_adopt_.empty() || timer_due || steady::now() >= next_poll) {
            dispatch_requested_ = false;
            lock.unlock();
            bool busy = false;
            try {
                busy = poll_once();
            } catch (const std::exception& e) {
                log->warn("host {}: looking for work failed: {}", id, e.what());
            }
            if (steady::now() - last_sweep > std::chrono::seconds(1)) {
                evict_idle();
                last_sweep = steady::now();
            }
            idle_wait = busy ? std::chrono::milliseconds(1) : std::min(idle_wait * 2, options.poll_interval);
            next_poll = steady::now() + idle_wait;
            lock.lock();
            continue;
        }
        auto wake = next_poll;
        if (!timers_.empty()) {
            wake = std::min(wake, steady::now() + std::chrono::milliseconds(std::max<std::int64_t>(0, timers_.top() - now_ms())));
        }
        if (linger_wake) wake = std::min(wake, *linger_wake);
        dispatch_cv_.wait_until(lock, wake, [&] {
            return dispatcher_stop_ || dispatch_requested_ || !to_adopt_.empty() || linger_replan_;
        });
        linger_replan_ = false;
    }
    lock.unlock();
    // Results buffered for this loop's next claim are written now (stopping_ is set: no claim).
    try {
        claim_tasks_once();
    } catch (const std::exception& e) {
        log->warn("host {}: writing activity results at stop failed: {}", id, e.what());
    }
}

bool Host::Impl::poll_once() {
    const store::Millis now = now_ms();
    bool busy = false;
    std::deque<std::string> adopt_now;
    std::vector<std::pair<std::string, bool>> load_now;
    std::size_t active = 0, cached = 0;
    std::unordered_set<std::string> in_flight;
    {
        std::lock_guard lock(mu_);
        adopt_now.swap(to_adopt_);
        load_now.swap(claimed_);
        while (!timers_.empty() && timers_.top() <= now) timers_.pop();
        cached = instances_.size();
        const std::size_t coming = load_now.size() + claiming_.size();
        std::size_t working = cached;
        if (cached + coming >= options.max_active_instances) {
            // Instances cached while they wait (for an event, a timer) are not being worked on:
            // a host full of them still claims the instances that have work.
            working = 0;
            for (const auto& [iid, inst] : instances_) working += is_idle(*inst) ? 0 : 1;
        }
        active = working + coming;
        in_flight = claiming_;
    }
    for (const auto& iid : adopt_now) load_instance(iid, false);
    // Instances whose claims became durable since the last look, their rows read in one go
    // (one round trip on a server).
    if (!load_now.empty()) {
        std::vector<std::string> ids;
        std::unordered_map<std::string, bool> orphaned;
        for (const auto& [iid, o] : load_now) {
            ids.push_back(iid);
            orphaned[iid] = o;
            m_claims.inc();
            if (o) {
                m_takeovers.inc();
                store->append_audit(store::AuditEntry{now, "host:" + id, "takeover", iid,
                                                      "lease of a host that stopped working on it had expired"},
                                    nullptr);
            }
        }
        forget_consumed_inbox();
        auto loaded = store->load_instances(ids, now_ms());
        for (auto& l : loaded) {
            auto iid = l.row.id;
            load_instance(iid, orphaned[iid], &l);
        }
    }
    bool delivered = deliver_owned_inbox(now) > 0;

    bool accepting;
    {
        std::lock_guard lock(mu_);
        accepting = !stopping_;
    }
    {
        // At capacity, the finishing of an instance wakes the dispatcher (on_committed), so
        // the host claims more at once rather than at its next look.
        std::lock_guard lock(mu_);
        at_capacity_ = active >= options.max_active_instances;
    }
    const auto names = claim_names();
    if (accepting && active < options.max_active_instances && !names.empty()) {
        int room = static_cast<int>(std::min<std::size_t>(options.max_active_instances - active,
                                                          static_cast<std::size_t>(options.claim_batch)));
        auto candidates = store->find_claimable(id, names, now, room * 2 + static_cast<int>(in_flight.size()));
        // A claim in flight is not durable yet: its instances still look free.
        std::erase_if(candidates, [&](const store::Candidate& c) { return in_flight.count(c.id) > 0; });
        if (!candidates.empty()) {
            // Take a random share: hosts looking at the same candidates collide less.
            static thread_local std::mt19937 rng{std::random_device{}()};
            std::shuffle(candidates.begin(), candidates.end(), rng);
            if (static_cast<int>(candidates.size()) > room) candidates.resize(static_cast<std::size_t>(room));
            auto asked = std::make_shared<std::unordered_map<std::string, bool>>();
            for (auto& c : candidates) (*asked)[c.id] = c.orphaned;
            {
                std::lock_guard lock(mu_);
                for (auto& c : candidates) claiming_.insert(c.id);
            }
            // Not waited for: the dispatcher goes on (the claim joins the next group commit, with
            // the episodes'), and loads what it got at its next look, which this wakes.
            store->claim_instances(candidates, id, now, now + lease_ms(), [this, asked](const store::WriteResult& r) {
                {
                    std::lock_guard lock(mu_);
                    for (const auto& [iid, orphaned] : *asked) claiming_.erase(iid);
                    if (!r.error) {
                        for (const auto& iid : r.ids) claimed_.emplace_back(iid, (*asked)[iid]);
                    }
                    dispatch_requested_ = true;
                }
                if (r.error) {
                    try {
                        std::rethrow_exception(r.error);
                    } catch (const std::exception& e) {
                        log->warn("host {}: claiming instances failed: {}", id, e.what());
                    }
                }
                dispatch_cv_.notify_one();
            });
            busy = true;
        }
    }
    if (claim_tasks_once() > 0) busy = true;  // stopping: only the buffered results go out
    if (auto next = store->next_visible_after(now)) {
        std::lock_guard lock(mu_);
        if (timers_.empty() || timers_.top() > *next) timers_.push(*next);
    }
    g_cached.set(static_cast<double>(cached));
    return busy || delivered || !adopt_now.empty() || !load_now.empty();
}

void Host::Impl::reread_inbox_locked(std::int64_t row) {
    inbox_cursor_.after_id = std::min(inbox_cursor_.after_id, row - 1);
    inbox_rewind_ = std::min(inbox_rewind_, row - 1);
}

std::size_t Host::Impl::deliver_owned_inbox(std::int64_t now) {
    store::InboxCursor cursor;
    {
        // Rows consumed by commits durable before this read cannot be in it: forget them now.
        // Rows consumed while it runs stay in delivered_inbox_, so a read that started before
        // their commit cannot deliver them a second time.
        std::lock_guard lock(mu_);
        for (auto row : consumed_inbox_) delivered_inbox_.erase(row);
        consumed_inbox_.clear();
        cursor = inbox_cursor_;
        inbox_rewind_ = std::numeric_limits<std::int64_t>::max();
    }
    // Only rows new since the last read (where the store can tell): rows delivered and not yet
    // consumed are not read, parsed and skipped again on every look.
    auto rows = store->owned_inbox_since(id, now, 5000, cursor);
    std::vector<bool> wanted(rows.size(), false);
    {
        std::lock_guard lock(mu_);
        for (std::size_t i = 0; i < rows.size(); ++i) wanted[i] = !delivered_inbox_.count(rows[i].id);
    }
    std::vector<Json> parsed(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (!wanted[i]) continue;
        try {
            parsed[i] = Json::parse(rows[i].event);
        } catch (const std::exception& e) {
            log->error("host {}: inbox row {} of {} is not valid JSON, skipped: {}", id, rows[i].id,
                       rows[i].instance_id, e.what());
        }
    }
    std::size_t count = 0;
    std::lock_guard lock(mu_);
    // A row left here (its instance not in memory yet, or suspended) is read again next time.
    auto skip = [&](std::int64_t row) { cursor.after_id = std::min(cursor.after_id, row - 1); };
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& row = rows[i];
        if (parsed[i].is_null() || delivered_inbox_.count(row.id)) continue;
        auto it = instances_.find(row.instance_id);
        if (it == instances_.end() || it->second->dead) {
            skip(row.id);
            continue;
        }
        auto& inst = it->second;
        if (inst->status == Status::Suspended && !row.control) {
            skip(row.id);
            continue;
        }
        delivered_inbox_.insert(row.id);
        inst->delivered.push_back(row.id);
        inst->incoming.push_back(Incoming{std::move(parsed[i]), row.id});
        enqueue_locked(inst);
        ++count;
    }
    // Rows given back while the read ran (reread_inbox_locked) are read again too.
    cursor.after_id = std::min(cursor.after_id, inbox_rewind_);
    inbox_cursor_ = cursor;
    return count;
}

void Host::Impl::forget_consumed_inbox() {
    // As in deliver_owned_inbox: inbox ids are rowids, reused once their row is deleted, so
    // a consumed row's id left in delivered_inbox_ could hide this instance's start event
    // (a new row with that id) for good. Commits durable before the next read are forgotten now.
    std::lock_guard lock(mu_);
    for (auto row : consumed_inbox_) delivered_inbox_.erase(row);
    consumed_inbox_.clear();
}

void Host::Impl::load_instance(const std::string& iid, bool orphaned, store::Store::Loaded* preloaded) {
    std::optional<store::InstanceRow> row;
    std::vector<store::HistoryRow> history;
    std::vector<store::InboxRow> inbox;
    if (preloaded) {
        row = std::move(preloaded->row);
        if (row->lease_owner != id || is_terminal(row->status)) return;
        history = std::move(preloaded->history);
        inbox = std::move(preloaded->inbox);
    } else {
        forget_consumed_inbox();
        row = store->get_instance(iid);
        if (!row || row->lease_owner != id || is_terminal(row->status)) return;
        history = store->get_history(iid);
        inbox = store->get_inbox(iid, now_ms());
    }

    auto inst = std::make_shared<LiveInstance>();
    inst->id = row->id;
    inst->name = row->name;
    inst->execution_id = row->execution_id;
    inst->parent_id = row->parent_id;
    inst->parent_task_id = row->parent_task_id;
    inst->version = row->version;
    inst->status = row->status;
    inst->next_seq = history.empty() ? 0 : history.back().seq + 1;
    inst->loaded_at = inst->last_active = clock->steady_now();
    detail::ExecutionInfo info{row->id, row->name, row->execution_id, row->parent_id, row->parent_task_id, {}};
    // No version yet (it has never run): this host's newest, recorded by its first commit.
    info.version = row->orchestration_version.value_or(registry->newest_version(row->name).value_or(""));
    if (!row->orchestration_version) inst->pin_version = info.version;
    inst->exec = std::make_unique<detail::Execution>(*registry, info, limits, log);

    // A rewind marker in the inbox (Client::rewind) is replayed at the end of history, so the
    // failure it rewinds is left out of the replay; the next commit records it and consumes
    // its row. (A second marker, from a rewind after a new failure, waits for the next load.)
    std::optional<std::pair<std::int64_t, Json>> rewind;
    for (const auto& b : inbox) {
        if (b.event.find("\"ExecutionRewound\"") == std::string::npos) continue;
        try {
            auto e = Json::parse(b.event);
            if (ev::type_of(e) == ev::kExecutionRewound) {
                rewind.emplace(b.id, std::move(e));
                break;
            }
        } catch (const std::exception&) {
        }
    }

    std::vector<detail::Decision> redispatch;
    if (!history.empty()) {
        std::vector<Json> events;
        events.reserve(history.size() + 1);
        try {
            for (const auto& h : history) events.push_back(Json::parse(h.event));
            if (rewind) events.push_back(rewind->second);
            inst->exec->replay(events, rewind ? 1 : 0);
        } catch (const std::exception& e) {
            inst->exec->fail_now("CorruptHistory", fmt::format("the history of instance '{}' could not be read: {}; "
                                                               "restore the database from a backup or purge it",
                                                               iid, e.what()));
        }
        m_replays.inc();
        redispatch = inst->exec->take_redispatch();
        if (!redispatch.empty()) {
            // Activities this host does not run itself get task rows with the next episode,
            // unless a result is in the inbox already (their row was done: no second run).
            std::unordered_set<std::int64_t> answered;
            for (const auto& b : inbox) {
                try {
                    auto e = Json::parse(b.event);
                    auto t = ev::type_of(e);
                    if ((t == ev::kTaskCompleted || t == ev::kTaskFailed) && e.value("x", "") == row->execution_id) {
                        answered.insert(e.value("id", std::int64_t{-1}));
                    }
                } catch (const std::exception&) {
                }
            }
            std::vector<detail::Decision> here;
            for (auto& d : redispatch) {
                if (answered.count(d.id)) continue;  // its result waits in the inbox: no second run
                if (runs_activity_directly(d.name)) {
                    here.push_back(std::move(d));
                } else {
                    inst->redispatch_tasks.push_back(std::move(d));
                }
            }
            redispatch = std::move(here);
        }
    }
    if (orphaned && row->recoveries > options.max_recoveries) {
        inst->exec->fail_now(
            "Poison",
            fmt::format("instance '{}' was taken over {} times in a row from hosts that stopped while working on it, "
                        "without progress in between; the work it runs last (see its history) likely crashes the host. "
                        "It is failed instead of retried forever",
                        iid, row->recoveries));
        redispatch.clear();
        inst->redispatch_tasks.clear();
    }
    // Remote code rebuilt here is sent a step at once: nothing tells what it saw on the last owner.
    inst->needs_episode = inst->exec->has_new_history() || inst->exec->finished() || !inst->redispatch_tasks.empty() ||
                          inst->exec->remote_step_due();

    std::vector<std::pair<std::int64_t, Json>> parsed;
    for (const auto& b : inbox) {
        try {
            parsed.emplace_back(b.id, Json::parse(b.event));
        } catch (const std::exception& e) {
            log->error("host {}: inbox row {} of {} is not valid JSON, skipped: {}", id, b.id, iid, e.what());
        }
    }
    std::lock_guard lock(mu_);
    if (stopping_) return;  // the lease lapses; another host (or this one, restarted) recovers it
    instances_[iid] = inst;
    if (rewind && !history.empty()) {
        delivered_inbox_.insert(rewind->first);
        inst->delivered.push_back(rewind->first);
        inst->consume_first.push_back(rewind->first);
    }
    for (std::size_t i = 0; i < parsed.size(); ++i) {
        auto& [row_id, event] = parsed[i];
        if (delivered_inbox_.count(row_id)) continue;
        if (inst->status == Status::Suspended && !ev::is_control(ev::type_of(event))) {
            reread_inbox_locked(row_id);  // delivered on resume, by the dispatcher's inbox read
            continue;
        }
        delivered_inbox_.insert(row_id);
        inst->delivered.push_back(row_id);
        inst->incoming.push_back(Incoming{std::move(event), row_id});
    }
    if (inst->needs_episode || !inst->incoming.empty()) enqueue_locked(inst);
    if (inst->status != Status::Suspended) dispatch_activities_locked(inst, redispatch);
    m_started.inc();
}

void Host::Impl::evict_idle() {
    auto now = clock->steady_now();
    std::vector<std::string> evicted;
    std::vector<std::unique_ptr<detail::Execution>> graveyard;
    {
        std::lock_guard lock(mu_);
        std::vector<std::shared_ptr<LiveInstance>> idle;
        for (auto& [iid, inst] : instances_) {
            if (is_idle(*inst)) idle.push_back(inst);
        }
        std::sort(idle.begin(), idle.end(), [](auto& a, auto& b) { return a->last_active < b->last_active; });
        std::size_t over = instances_.size() > options.max_cached_instances
                               ? instances_.size() - options.max_cached_instances
                               : 0;
        for (auto& inst : idle) {
            bool too_old = now - inst->last_active > options.idle_eviction;
            if (!too_old && over == 0) break;
            if (over > 0) --over;
            inst->dead = true;
            instances_.erase(inst->id);
            for (auto row : inst->delivered) delivered_inbox_.erase(row);
            graveyard.push_back(std::move(inst->exec));
            evicted.push_back(inst->id);
        }
    }
    graveyard.clear();
    if (!evicted.empty()) {
        log->debug("host {}: evicted {} idle instances", id, evicted.size());
        store->release_leases(id, std::move(evicted), false, nullptr);
    }
}

}  // namespace durable
