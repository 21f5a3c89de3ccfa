// Lease renewal and self-fencing.
//
// Every half lease the renewer extends all of this host's unexpired leases in one statement
// (expiry only: the version, the commits' fencing token, never changes, so renewal cannot
// make the host's own in-flight commit fail). Instances whose lease it no longer finds are
// dropped from memory at once. If no renewal has succeeded for two thirds of the lease
// (monotonic clock), the host drops every instance before another host may claim them.
#include <fmt/format.h>
#include <future>
#include <unistd.h>
#include <unordered_set>

#include "runtime/host_impl.hpp"

namespace durable {

void Host::Impl::fence(const char* why) {
    std::vector<std::unique_ptr<detail::Execution>> graveyard;
    {
        std::lock_guard lock(mu_);
        fenced_until_ = clock->steady_now() + options.lease_duration;  // readiness: unready for a lease
        for (auto& [row, held_task] : held_tasks_) held_task.token.cancel();
        if (instances_.empty()) return;
        m_fences.inc();
        log->error("host {}: fencing itself, dropping {} instances: {}", id, instances_.size(), why);
        auto all = instances_;
        for (auto& [iid, inst] : all) {
            drop_locked(inst, why);
            if (!inst->running && inst->exec) graveyard.push_back(std::move(inst->exec));
        }
    }
}

void Host::Impl::renewer_loop() {
    const auto interval = lease_timing.renew_every();
    std::unique_lock lock(mu_);
    while (!renewer_stop_) {
        renew_cv_.wait_for(lock, interval, [&] { return renewer_stop_; });
        if (renewer_stop_) break;
        auto last_ok = last_renewal_ok_;
        // Woken past the fencing point (the process was stopped, say): its leases may be gone
        // already. Readiness says so for a lease even if this renewal succeeds.
        if (lease_timing.fenced(last_ok, clock->steady_now())) fenced_until_ = clock->steady_now() + options.lease_duration;
        const auto claims_before = task_claims_started_;
        const bool claims_idle = task_claims_started_ == task_claims_done_;
        lock.unlock();

        auto start = clock->steady_now();
        store::Millis now = now_ms();
        auto done = std::make_shared<std::promise<store::WriteResult>>();
        auto f = done->get_future();
        store->renew_leases(id, now, now + lease_ms(), [done](const store::WriteResult& r) { done->set_value(r); });
        store->heartbeat(host_row(now, std::nullopt), nullptr);
        // Wait no longer than the fencing point of the last good renewal. Past it (the host
        // has fenced itself already), give this renewal the interval to land: a 1 ms wait
        // could never see it succeed, and the host would stay fenced for good.
        auto left = lease_timing.until_fence(last_ok, start);
        if (left < std::chrono::milliseconds(1)) left = interval;
        bool ready = f.wait_for(left) == std::future_status::ready;
        if (ready) {
            auto r = f.get();
            if (r.ok) {
                m_renewals.inc();
                std::unordered_set<std::string> held(r.ids.begin(), r.ids.end());
                std::vector<std::unique_ptr<detail::Execution>> graveyard;
                lock.lock();
                last_renewal_ok_ = start;
                std::vector<std::shared_ptr<LiveInstance>> lost;
                for (auto& [iid, inst] : instances_) {
                    if (!held.count(iid) && inst->loaded_at < start) lost.push_back(inst);
                }
                for (auto& inst : lost) {
                    drop_locked(inst, "lease renewal found its lease gone");
                    if (!inst->running && inst->exec) graveyard.push_back(std::move(inst->exec));
                }
                // Activity tasks whose lease is gone (taken over after a stall): their runs
                // here are cancelled; a completion would be refused anyway.
                std::unordered_set<std::int64_t> rows(r.rows.begin(), r.rows.end());
                for (auto& [row, held_task] : held_tasks_) {
                    if (!rows.count(row) && held_task.claimed_at < start) {
                        log->warn("host {}: lease renewal found activity task {} gone; cancelling its run", id, row);
                        held_task.token.cancel();
                    }
                }
                // Rows leased to this host that nothing here runs (a run that was cancelled, a
                // result that could not be written): freed, or they would be renewed forever.
                // Not while a claim overlapped this renewal (its rows may not be listed yet).
                std::vector<std::int64_t> leaked;
                if (claims_idle && task_claims_started_ == claims_before) {
                    for (auto row : r.rows) {
                        if (!held_tasks_.count(row) && !completing_rows_.count(row)) leaked.push_back(row);
                    }
                }
                if (!leaked.empty()) store->release_tasks(id, std::move(leaked), nullptr);
                lock.unlock();
                graveyard.clear();
            } else {
                m_renewal_failures.inc();
                std::string why = "unknown";
                try {
                    if (r.error) std::rethrow_exception(r.error);
                } catch (const std::exception& e) {
                    why = e.what();
                }
                log->warn("host {}: lease renewal failed: {}", id, why);
            }
        } else {
            m_renewal_failures.inc();
            log->warn("host {}: lease renewal did not finish in time", id);
        }
        lock.lock();
        if (lease_timing.fenced(last_renewal_ok_, clock->steady_now())) {
            lock.unlock();
            fence("no lease renewal succeeded within two thirds of the lease duration");
            lock.lock();
        }
    }
}

}  // namespace durable
