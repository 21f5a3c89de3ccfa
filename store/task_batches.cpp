// Store::complete_and_claim_tasks for stores that cannot do it in one transaction: each
// completion is its own complete_task write and the claim its own claim_tasks write; the
// callback runs once all of them are done. Each write keeps its own guarantees (a result is
// delivered with its row's delete or not at all); only the one-commit saving is lost.
#include <atomic>
#include <memory>
#include <mutex>

#include "store/store.hpp"

namespace durable::store {

void Store::complete_and_claim_tasks(std::string owner, std::vector<TaskCompletion> done, std::vector<std::string> names,
                                     Millis lease_ms, int limit,
                                     std::function<void(const WriteResult&, std::vector<ClaimedTask>)> cb) {
    struct Joint {
        std::mutex mu;
        WriteResult result;                // guarded by mu
        std::vector<ClaimedTask> claimed;  // guarded by mu
        std::size_t left = 0;              // guarded by mu
        std::function<void(const WriteResult&, std::vector<ClaimedTask>)> cb;
        void finish_one() {
            std::unique_lock lock(mu);
            if (--left > 0) return;
            lock.unlock();
            if (cb) cb(result, std::move(claimed));
        }
    };
    auto joint = std::make_shared<Joint>();
    joint->cb = std::move(cb);
    joint->result.ok = true;
    const bool claim = limit > 0 && !names.empty();
    joint->left = done.size() + (claim ? 1 : 0) + 1;  // +1: held until every write is submitted
    for (auto& d : done) {
        complete_task(d.row_id, owner, std::move(d.completion), [joint, row = d.row_id](const WriteResult& r) {
            {
                std::lock_guard lock(joint->mu);
                if (r.ok) joint->result.rows.push_back(row);
                if (r.error && !joint->result.error) joint->result.error = r.error;
            }
            joint->finish_one();
        });
    }
    if (claim) {
        claim_tasks(std::move(names), owner, lease_ms, limit, [joint](std::vector<ClaimedTask> t, std::exception_ptr e) {
            {
                std::lock_guard lock(joint->mu);
                joint->claimed = std::move(t);
                if (e && !joint->result.error) joint->result.error = e;
            }
            joint->finish_one();
        });
    }
    joint->finish_one();
}

}  // namespace durable::store
