// The event distributor: the pump, the replay ring and the subscriber queues.
//
// Invariants:
//   * Offsets are assigned under in_mu_ in the order entries enter input_, so input_ is in
//     offset order and the pump sees every offset exactly once, as an event or inside a gap
//     marker (a run of offsets publish() dropped because input_ was full).
//   * The pump appends to the ring and offers to every live subscriber under mu_, one input
//     entry at a time; so under mu_, the ring plus pump_next_ say exactly what every live
//     subscriber has been offered. A resuming subscriber joins live_ under mu_ when it has
//     read the ring up to pump_next_: that is why the seam has no duplicate and no loss.
//   * The ring is sorted by offset. It covers [ring_start_, pump_next_): an offset in that
//     range that is not in the ring was dropped at the input.
//   * Each subscription's cursor_ is the next offset it may deliver; items are only ever
//     queued at or after it, so what a reader sees is strictly increasing in offset.
//   * Lock order: mu_ before a SubscriptionState's mu_; in_mu_ is never held with either.
//     The pump never waits for a reader: offering to a full queue applies the overflow policy.
#include "durable/event_distributor.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <thread>

#include "durable/errors.hpp"
#include "store/named_thread.hpp"

namespace durable::detail {

namespace {

using EventPtr = std::shared_ptr<const WatchEvent>;

constexpr const char* kReasonEvicted =
    "events no longer in the replay buffer (evicted by capacity or age); read them from the store";
constexpr const char* kReasonInputOverflow =
    "events dropped because the distributor's input queue was full; read them from the store";
constexpr const char* kReasonStopped = "the event distributor stopped";
constexpr const char* kReasonClosed = "closed by the subscriber";

// The offsets an item covers.
struct Span {
    std::uint64_t from;
    std::uint64_t to;
};

Span span_of(const WatchItem& item) {
    if (const auto* ev = std::get_if<EventPtr>(&item)) return {(*ev)->offset, (*ev)->offset};
    const auto& gap = std::get<WatchGap>(item);
    return {gap.from_offset, gap.to_offset};
}

// One entry of the pump's input: an event, or (event == nullptr) offsets that were dropped.
struct InputEntry {
    std::shared_ptr<WatchEvent> event;
    std::uint64_t gap_from = 0;
    std::uint64_t gap_to = 0;
    std::string reason = kReasonInputOverflow;  // why the gap's events are missing
};

}  // namespace

// What offering an item to a subscriber did.
enum class Offer { Queued, Skipped, DroppedOldest, Disconnected, Closed };

class SubscriptionState : public std::enable_shared_from_this<SubscriptionState> {
public:
    SubscriptionState(std::string instance_id, std::size_t capacity, OverflowPolicy policy,
                      std::uint64_t cursor, bool catching_up)
        : instance_id_(std::move(instance_id)),
          capacity_(capacity),
          policy_(policy),
          cursor_(cursor),
          catching_up_(catching_up) {}

    bool matches(const WatchEvent& ev) const { return instance_id_.empty() || ev.instance_id == instance_id_; }

    // Queues `item` if it is at or after the cursor, applying the overflow policy. Needs mu_.
    Offer offer_locked(WatchItem item) {
        if (closed_) return Offer::Closed;
        Span span = span_of(item);
        if (span.to < cursor_) return Offer::Skipped;
        if (span.from < cursor_) std::get<WatchGap>(item).from_offset = cursor_;  // only gaps span
        cursor_ = span.to + 1;
        Offer result = Offer::Queued;
        if (queue_.size() >= capacity_) {
            if (policy_ == OverflowPolicy::Disconnect) {
                mark_closed_locked(fmt::format(
                    "subscriber queue overflowed (capacity {}): resubscribe with resume_after_offset = "
                    "the last offset read",
                    capacity_));
                return Offer::Disconnected;
            }
            drop_oldest_locked();
            result = Offer::DroppedOldest;
        }
        queue_.push_back(std::move(item));
        cv_.notify_all();
        return result;
    }

    // Queues an item found while catching up (the cursor was checked by the caller). Needs mu_.
    void append_locked(WatchItem item) { queue_.push_back(std::move(item)); }

    // Ends the subscription once; returns whether this call did. Needs mu_.
    bool mark_closed_locked(std::string reason) {
        if (closed_) return false;
        closed_ = true;
        close_reason_ = std::move(reason);
        open_count_->fetch_sub(1);
        cv_.notify_all();
        return true;
    }

    const std::string instance_id_;
    const std::size_t capacity_;
    const OverflowPolicy policy_;
    std::shared_ptr<std::atomic<std::size_t>> open_count_;  // the distributor's, set once

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<WatchItem> queue_;   // guarded by mu_
    std::optional<WatchGap> lost_;  // guarded by mu_: dropped items; read before queue_
    std::uint64_t cursor_;          // guarded by mu_: the next offset this subscription may deliver
    bool catching_up_;              // guarded by mu_ (and changed only with the core's mu_ held)
    bool closed_ = false;           // guarded by mu_
    std::string close_reason_;      // guarded by mu_

private:
    void drop_oldest_locked() {
        Span span = span_of(queue_.front());
        queue_.pop_front();
        if (lost_) {
            lost_->to_offset = span.to;
        } else {
            lost_ = WatchGap{span.from, span.to,
                             fmt::format("subscriber queue overflowed (capacity {}): oldest events dropped; "
                                         "read them from the store",
                                         capacity_)};
        }
    }
};

class DistributorCore {
public:
    explicit DistributorCore(EventDistributorOptions options)
        : ring_capacity_(options.ring_capacity),
          ring_max_age_ms_(options.ring_max_age.count()),
          default_queue_capacity_(options.default_queue_capacity),
          input_capacity_(options.input_capacity),
          clock_(options.clock ? std::move(options.clock) : SystemClock::instance()) {
        if (ring_capacity_ == 0 || default_queue_capacity_ == 0 || input_capacity_ == 0) {
            throw InvalidInput(
                "EventDistributorOptions: ring_capacity, default_queue_capacity and input_capacity must be "
                "at least 1");
        }
        pump_thread_ = durable::detail::named_thread("durable-events", [this] { pump(); });
    }

    ~DistributorCore() { stop(); }

    // Queues events for the pump; returns how many were kept.
    std::size_t publish(std::vector<std::shared_ptr<WatchEvent>> events) {
        std::size_t kept = 0;
        bool wake = false;
        {
            std::lock_guard lock(in_mu_);
            if (stopping_) return 0;
            wake = input_.empty();
            for (auto& ev : events) {
                ev->offset = next_offset_++;
                if (input_.size() < input_capacity_) {
                    input_.push_back(InputEntry{std::move(ev)});
                    ++published_;
                    ++kept;
                } else if (!input_.back().event && input_.back().reason == kReasonInputOverflow) {
                    input_.back().gap_to = next_offset_ - 1;  // once full, every drop extends it
                    ++input_dropped_;
                } else {
                    input_.push_back(InputEntry{nullptr, next_offset_ - 1, next_offset_ - 1});
                    ++input_dropped_;
                }
            }
            wake = wake && !input_.empty();
        }
        if (wake) in_cv_.notify_one();
        return kept;
    }

    // Uses `count` offsets for events the source lost; subscribers get a gap over them.
    void publish_gap(std::uint64_t count, std::string reason) {
        if (count == 0) return;
        bool wake = false;
        {
            std::lock_guard lock(in_mu_);
            if (stopping_) return;
            wake = input_.empty();
            std::uint64_t from = next_offset_;
            next_offset_ += count;
            input_.push_back(InputEntry{nullptr, from, next_offset_ - 1, std::move(reason)});
            source_lost_ += count;
        }
        if (wake) in_cv_.notify_one();
    }

    std::shared_ptr<SubscriptionState> subscribe(const SubscribeOptions& options) {
        std::size_t capacity = options.queue_capacity != 0 ? options.queue_capacity : default_queue_capacity_;
        std::shared_ptr<SubscriptionState> state;
        if (options.resume_after_offset) {
            std::uint64_t after = *options.resume_after_offset;
            {
                std::lock_guard lock(in_mu_);
                if (after >= next_offset_) {
                    throw InvalidInput(fmt::format(
                        "resume_after_offset {} was never assigned by this event distributor (last offset: {}); "
                        "offsets restart at 1 with each distributor: subscribe without resume_after_offset and "
                        "read the missed history from the store",
                        after, next_offset_ - 1));
                }
            }
            state = std::make_shared<SubscriptionState>(options.instance_id, capacity, options.overflow, after + 1,
                                                        /*catching_up=*/true);
            state->open_count_ = open_count_;
            open_count_->fetch_add(1);
            return state;  // reads the ring lazily, in catch_up()
        }
        std::lock_guard lock(mu_);
        state = std::make_shared<SubscriptionState>(options.instance_id, capacity, options.overflow, pump_next_,
                                                    /*catching_up=*/false);
        state->open_count_ = open_count_;
        open_count_->fetch_add(1);
        std::lock_guard sub_lock(state->mu_);
        if (stopped_) {
            state->mark_closed_locked(kReasonStopped);
        } else {
            live_.push_back(state);
        }
        return state;
    }

    // Fills a resuming subscriber's queue from the ring; joins it to the live fan-out once
    // it has caught up and has room for live events.
    void catch_up(SubscriptionState& sub) {
        std::int64_t now = clock_->now_ms();
        std::lock_guard lock(mu_);
        evict_locked(now);
        std::lock_guard sub_lock(sub.mu_);
        if (!sub.catching_up_ || sub.closed_) return;
        std::uint64_t c = sub.cursor_;
        if (c < ring_start_) {
            sub.append_locked(WatchGap{c, ring_start_ - 1, kReasonEvicted});
            c = ring_start_;
        }
        auto it = std::lower_bound(ring_.begin(), ring_.end(), c,
                                   [](const EventPtr& ev, std::uint64_t off) { return ev->offset < off; });
        for (; it != ring_.end() && sub.queue_.size() < sub.capacity_; ++it) {
            const EventPtr& ev = *it;
            if (ev->offset > c) sub.append_locked(WatchGap{c, ev->offset - 1, kReasonInputOverflow});
            if (sub.matches(*ev)) sub.append_locked(ev);
            c = ev->offset + 1;
        }
        // Joining with a nearly full queue would overflow it on the next live events, which
        // for OverflowPolicy::Disconnect would end a subscription that is merely catching up.
        if (it == ring_.end() && sub.queue_.size() <= sub.capacity_ / 2) {
            if (c < pump_next_) sub.append_locked(WatchGap{c, pump_next_ - 1, kReasonInputOverflow});
            c = std::max(c, pump_next_);
            sub.catching_up_ = false;
            if (stopped_) {
                sub.mark_closed_locked(kReasonStopped);
            } else {
                live_.push_back(sub.shared_from_this());
            }
        }
        sub.cursor_ = c;
        sub.cv_.notify_all();
    }

    void close(const std::shared_ptr<SubscriptionState>& sub) {
        std::lock_guard lock(mu_);
        {
            std::lock_guard sub_lock(sub->mu_);
            sub->queue_.clear();
            sub->lost_.reset();
            sub->mark_closed_locked(kReasonClosed);
        }
        std::erase(live_, sub);
    }

    void stop() {
        {
            std::lock_guard lock(in_mu_);
            stopping_ = true;
        }
        in_cv_.notify_one();
        std::lock_guard lock(stop_mu_);
        if (pump_thread_.joinable()) pump_thread_.join();
    }

    bool has_subscribers() const { return open_count_->load(std::memory_order_relaxed) > 0; }

    EventDistributorStats stats() const {
        EventDistributorStats s;
        {
            std::lock_guard lock(in_mu_);
            s.published = published_;
            s.input_dropped = input_dropped_;
            s.source_lost = source_lost_;
            s.next_offset = next_offset_;
        }
        std::lock_guard lock(mu_);
        s.subscriber_dropped = subscriber_dropped_;
        s.disconnected = disconnected_;
        s.subscribers = open_count_->load();
        s.ring_size = ring_.size();
        s.ring_first_offset = ring_start_;
        return s;
    }

private:
    void pump() {
        for (;;) {
            std::deque<InputEntry> batch;
            bool stopping = false;
            {
                std::unique_lock lock(in_mu_);
                in_cv_.wait(lock, [&] { return !input_.empty() || stopping_; });
                batch.swap(input_);
                stopping = stopping_;  // publish() refuses new entries from now on
            }
            if (!batch.empty()) {
                std::int64_t now = clock_->now_ms();
                for (auto& entry : batch) pump_entry(entry, now);
            }
            if (stopping) break;
        }
        std::lock_guard lock(mu_);
        stopped_ = true;
        for (auto& sub : live_) {
            std::lock_guard sub_lock(sub->mu_);
            sub->mark_closed_locked(kReasonStopped);
        }
        live_.clear();
    }

    void pump_entry(InputEntry& entry, std::int64_t now) {
        std::lock_guard lock(mu_);
        std::optional<WatchItem> gap;
        EventPtr ev;
        if (entry.event) {
            entry.event->published_at_ms = now;
            ev = std::move(entry.event);
            ring_.push_back(ev);
            pump_next_ = ev->offset + 1;
            evict_locked(now);
        } else {
            gap = WatchGap{entry.gap_from, entry.gap_to, entry.reason};
            pump_next_ = entry.gap_to + 1;
        }
        bool any_closed = false;
        for (auto& sub : live_) {
            std::lock_guard sub_lock(sub->mu_);
            Offer offer = Offer::Skipped;
            if (ev) {
                if (sub->matches(*ev)) offer = sub->offer_locked(ev);
                else if (sub->closed_) offer = Offer::Closed;
            } else {
                offer = sub->offer_locked(*gap);
            }
            if (offer == Offer::DroppedOldest) ++subscriber_dropped_;
            if (offer == Offer::Disconnected) ++disconnected_;
            any_closed = any_closed || offer == Offer::Disconnected || offer == Offer::Closed;
        }
        if (any_closed) {
            std::erase_if(live_, [](const std::shared_ptr<SubscriptionState>& sub) {
                std::lock_guard sub_lock(sub->mu_);
                return sub->closed_;
            });
        }
    }

    // Drops ring entries beyond capacity or older than the maximum age. Needs mu_.
    void evict_locked(std::int64_t now) {
        while (!ring_.empty() &&
               (ring_.size() > ring_capacity_ ||
                (ring_max_age_ms_ > 0 && now - ring_.front()->published_at_ms > ring_max_age_ms_))) {
            ring_start_ = ring_.front()->offset + 1;
            ring_.pop_front();
        }
    }

    const std::size_t ring_capacity_;
    const std::int64_t ring_max_age_ms_;
    const std::size_t default_queue_capacity_;
    const std::size_t input_capacity_;
    const std::shared_ptr<Clock> clock_;
    const std::shared_ptr<std::atomic<std::size_t>> open_count_ = std::make_shared<std::atomic<std::size_t>>(0);

    mutable std::mutex in_mu_;
    std::condition_variable in_cv_;
    std::deque<InputEntry> input_;     // guarded by in_mu_
    std::uint64_t next_offset_ = 1;    // guarded by in_mu_
    std::uint64_t published_ = 0;      // guarded by in_mu_
    std::uint64_t input_dropped_ = 0;  // guarded by in_mu_
    std::uint64_t source_lost_ = 0;    // guarded by in_mu_
    bool stopping_ = false;            // guarded by in_mu_

    mutable std::mutex mu_;
    std::deque<EventPtr> ring_;                              // guarded by mu_, sorted by offset
    std::uint64_t ring_start_ = 1;                           // guarded by mu_
    std::uint64_t pump_next_ = 1;                            // guarded by mu_: next offset to pump
    std::vector<std::shared_ptr<SubscriptionState>> live_;  // guarded by mu_
    std::uint64_t subscriber_dropped_ = 0;                   // guarded by mu_
    std::uint64_t disconnected_ = 0;                         // guarded by mu_
    bool stopped_ = false;                                   // guarded by mu_: pump has finished

    std::mutex stop_mu_;  // serializes joining the pump
    std::thread pump_thread_;
};

}  // namespace durable::detail

namespace durable {

Subscription::Subscription(std::shared_ptr<detail::DistributorCore> core,
                           std::shared_ptr<detail::SubscriptionState> state)
    : core_(std::move(core)), state_(std::move(state)) {}

Subscription::~Subscription() { close(); }

std::optional<WatchItem> Subscription::next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
    auto& s = *state_;
    std::unique_lock lock(s.mu_);
    for (;;) {
        if (s.lost_) {
            WatchItem item = std::move(*s.lost_);
            s.lost_.reset();
            return item;
        }
        if (!s.queue_.empty()) {
            WatchItem item = std::move(s.queue_.front());
            s.queue_.pop_front();
            return item;
        }
        if (s.closed_) return WatchItem{WatchClosed{s.close_reason_}};
        if (s.catching_up_) {
            lock.unlock();
            core_->catch_up(s);  // never waits for anything but the core's lock
            lock.lock();
            continue;
        }
        if (!s.cv_.wait_until(lock, deadline, [&] { return s.lost_ || !s.queue_.empty() || s.closed_; })) {
            return std::nullopt;
        }
    }
}

void Subscription::close() { core_->close(state_); }

const std::string& Subscription::instance_id() const { return state_->instance_id_; }

EventDistributor::EventDistributor(EventDistributorOptions options)
    : core_(std::make_shared<detail::DistributorCore>(std::move(options))) {}

EventDistributor::~EventDistributor() { stop(); }

bool EventDistributor::publish(WatchEvent event) {
    std::vector<std::shared_ptr<WatchEvent>> events;
    events.push_back(std::make_shared<WatchEvent>(std::move(event)));
    return core_->publish(std::move(events)) == 1;
}

std::size_t EventDistributor::publish(std::vector<WatchEvent> events) {
    std::vector<std::shared_ptr<WatchEvent>> shared;
    shared.reserve(events.size());
    for (auto& ev : events) shared.push_back(std::make_shared<WatchEvent>(std::move(ev)));
    return core_->publish(std::move(shared));
}

std::shared_ptr<Subscription> EventDistributor::subscribe(SubscribeOptions options) {
    auto state = core_->subscribe(options);
    return std::shared_ptr<Subscription>(new Subscription(core_, std::move(state)));
}

void EventDistributor::publish_gap(std::uint64_t count, std::string reason) {
    core_->publish_gap(count, std::move(reason));
}

void EventDistributor::stop() { core_->stop(); }

EventDistributorStats EventDistributor::stats() const { return core_->stats(); }
bool EventDistributor::has_subscribers() const { return core_->has_subscribers(); }

}  // namespace durable
