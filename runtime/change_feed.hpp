// runtime/change_feed.hpp — the one thread per process that follows the store's change feed
// and publishes what other processes (and this one) commit into the process's event
// distributor.
//
// Change detection costs no scan: the thread asks the store's change counter (SQLite's
// PRAGMA data_version, which moves when any other connection commits) and reads the feed
// only when it moved. It sleeps on the process's completion hub, so a commit of this process
// wakes it at once; commits of other processes are seen within `poll_interval`.
//
// What it publishes: for each feed row, the history events it names, in feed order, so every
// subscriber sees every instance's events in commit order. Rows pruned before the thread read
// them (it fell behind the feed's retention) become one WatchGap over one offset per lost
// row. When nobody subscribes it only moves its cursor (no history is read).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "durable/event_distributor.hpp"
#include "runtime/completion_hub.hpp"
#include "store/store.hpp"

namespace durable::detail {

class ChangeFeedFollower {
public:
    // Starts following at the feed's current head (live events only).
    ChangeFeedFollower(std::shared_ptr<store::Store> store, std::shared_ptr<CompletionHub> hub,
                       std::shared_ptr<EventDistributor> events, std::chrono::milliseconds poll_interval);
    ~ChangeFeedFollower();  // stops and joins the thread (within one poll interval)
    ChangeFeedFollower(const ChangeFeedFollower&) = delete;
    ChangeFeedFollower& operator=(const ChangeFeedFollower&) = delete;

    // Feed rows read and feed rows lost (pruned before they were read), for metrics.
    std::uint64_t rows_read() const { return rows_read_.load(std::memory_order_relaxed); }
    std::uint64_t rows_lost() const { return rows_lost_.load(std::memory_order_relaxed); }
    // The seq of the last feed row handled.
    std::int64_t cursor() const { return cursor_.load(std::memory_order_relaxed); }

private:
    void run();
    void drain();

    const std::shared_ptr<store::Store> store_;
    const std::shared_ptr<CompletionHub> hub_;
    const std::shared_ptr<EventDistributor> events_;
    const std::chrono::milliseconds poll_interval_;
    std::atomic<bool> stop_{false};
    std::atomic<std::int64_t> cursor_{0};
    std::atomic<std::uint64_t> rows_read_{0}, rows_lost_{0};
    std::thread thread_;
};

}  // namespace durable::detail
