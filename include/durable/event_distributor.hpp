// durable/event_distributor.hpp — fans a host's committed history events out to watchers.
//
// One EventDistributor per source (a host). Publishers hand it events; one pump thread owned
// by the distributor gives every event a global `offset` (1, 2, 3, ... in publish order),
// keeps it in a bounded replay ring and copies a reference into the bounded queue of every
// live subscriber whose filter matches. The pump never waits for a reader: a full queue is
// handled by the subscriber's OverflowPolicy, so one slow reader never stalls the pump or
// the other readers.
//
// What a subscriber reads (Subscription::next) is a stream of items in strictly increasing
// offset order, each offset at most once:
//   * a WatchEvent that matches its filter;
//   * a WatchGap{from_offset, to_offset}: events in that range may have been lost for this
//     subscriber; it must fill them from the store (by instance history seq);
//   * finally WatchClosed{reason}, repeated on every later call.
// Nothing matching the filter is ever silently missing: it is either delivered or covered by
// a gap. Gaps may be conservative (cover events that did not match the filter).
//
// Where events can be lost, and what each subscriber is told:
//   * Pump input full (`input_capacity` events published and not yet pumped): publish()
//     drops the event and returns false; the offset is still used, and every subscriber
//     (live or resuming through that range) gets a gap over it.
//   * Subscriber queue full (`queue_capacity` unread items), OverflowPolicy::DropOldest: the
//     oldest queued item is dropped and the subscriber's next item is a gap covering
//     everything dropped since it last read; the new event is queued.
//   * Subscriber queue full, OverflowPolicy::Disconnect: the new event is not queued; the
//     subscriber reads what is already queued, then WatchClosed with a reason. Resubscribing
//     with `resume_after_offset` = the last offset it saw continues without loss while the
//     ring still holds the rest.
//   * Resuming after an offset the ring no longer holds (evicted because the ring exceeded
//     `ring_capacity` or the event is older than `ring_max_age`): a gap first, then the
//     events the ring still has.
//
// Resuming: subscribe with `resume_after_offset = X` delivers the retained events after X,
// then the live ones, with no duplicate or loss at the seam. A resuming subscriber reads the
// ring directly (lazily, as it calls next()) and joins the live fan-out under the pump's lock
// once it has caught up, so a long replay never overflows its queue. Offsets belong to one
// distributor object and restart at 1 with it (a restarted host): an offset from another
// incarnation is rejected with InvalidInput.
//
// Time: `ring_max_age` and `published_at_ms` use the injected Clock's wall time (now_ms(),
// read by the pump once per batch and by a resuming subscriber before it reads the ring), so
// a ManualClock drives age eviction in tests. Waits in next() use the machine's monotonic
// clock.
//
// Thread safety: every EventDistributor method may be called from any thread, concurrently.
// publish() never blocks on readers (it only takes a short lock on the pump's input).
// A Subscription may be used from any thread; next() is meant for one reader at a time
// (concurrent readers each get distinct items but the order between them is theirs to keep);
// close() may be called from any thread and wakes a blocked next(). Subscriptions may outlive
// the distributor; after stop() they read what is queued, then WatchClosed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "durable/clock.hpp"

namespace durable {

namespace detail {
class DistributorCore;
class SubscriptionState;
}  // namespace detail

using Json = nlohmann::json;

// One committed history event of one instance.
struct WatchEvent {
    std::string instance_id;
    std::int64_t seq = 0;              // the event's history seq within its instance
    Json event;                        // the history event as stored
    std::int64_t published_at_ms = 0;  // set by the distributor (pump time, Clock::now_ms)
    std::uint64_t offset = 0;          // set by the distributor: global, 1-based, in publish order
    std::string name;                  // the instance's orchestration name
    std::string status;                // the instance's status after the commit that wrote it
    std::int64_t feed_seq = 0;         // the store's change-feed row that carried it
};

// Events in [from_offset, to_offset] may be missing for this subscriber: fill from the store.
struct WatchGap {
    std::uint64_t from_offset = 0;
    std::uint64_t to_offset = 0;
    std::string reason;
};

// The subscription has ended; nothing more will arrive.
struct WatchClosed {
    std::string reason;
};

// What Subscription::next() returns. Events are shared (read-only) between subscribers.
using WatchItem = std::variant<std::shared_ptr<const WatchEvent>, WatchGap, WatchClosed>;

// What a subscriber's full queue does when the pump has one more event for it.
enum class OverflowPolicy {
    DropOldest,  // drop the oldest queued item; the subscriber reads a WatchGap for it
    Disconnect,  // close the subscription (after what is queued) with a reason
};

// The distributor's settings (HostOptions / DatabaseOptions carry them for the process's one).
struct EventDistributorOptions {
    std::size_t ring_capacity = 4096;                   // events kept for resuming subscribers
    std::chrono::milliseconds ring_max_age{60'000};     // older ones are evicted; <= 0: no limit
    std::size_t default_queue_capacity = 1024;          // per subscriber, unless it says
    std::size_t input_capacity = 65'536;                // published but not yet pumped
    std::shared_ptr<Clock> clock;                       // default: SystemClock
};

struct SubscribeOptions {
    std::string instance_id;                            // only this instance; empty: all
    std::optional<std::uint64_t> resume_after_offset;   // replay after it; none: live only
    std::size_t queue_capacity = 0;                     // 0: the distributor's default
    OverflowPolicy overflow = OverflowPolicy::DropOldest;
};

struct EventDistributorStats {
    std::uint64_t published = 0;           // events accepted by publish()
    std::uint64_t input_dropped = 0;       // events publish() dropped: pump input full
    std::uint64_t source_lost = 0;         // offsets publish_gap() marked lost at the source
    std::uint64_t subscriber_dropped = 0;  // items dropped from subscriber queues (DropOldest)
    std::uint64_t disconnected = 0;        // subscriptions closed by OverflowPolicy::Disconnect
    std::size_t subscribers = 0;           // subscriptions not yet closed
    std::size_t ring_size = 0;             // events in the replay ring
    std::uint64_t ring_first_offset = 1;   // resuming after ring_first_offset - 1 needs no gap
    std::uint64_t next_offset = 1;         // the offset the next published event will get
};

// A subscriber's end: a bounded queue the pump fills and the reader drains.
class Subscription {
public:
    ~Subscription();  // closes
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // The next item, waiting up to `timeout` for one; nullopt if none came in time.
    // After the stream ends it returns WatchClosed on every call, without waiting.
    std::optional<WatchItem> next(std::chrono::milliseconds timeout);
    // Ends the subscription: drops what is queued; next() returns WatchClosed at once.
    void close();
    // The instance this subscription is filtered on (empty: all instances).
    const std::string& instance_id() const;

private:
    friend class EventDistributor;
    Subscription(std::shared_ptr<detail::DistributorCore> core,
                 std::shared_ptr<detail::SubscriptionState> state);

    std::shared_ptr<detail::DistributorCore> core_;
    std::shared_ptr<detail::SubscriptionState> state_;
};

class EventDistributor {
public:
    // Starts the pump thread. Throws InvalidInput for a zero capacity.
    explicit EventDistributor(EventDistributorOptions options = {});
    ~EventDistributor();  // stop()
    EventDistributor(const EventDistributor&) = delete;
    EventDistributor& operator=(const EventDistributor&) = delete;

    // Hands `event` to the pump without waiting; `offset` and `published_at_ms` are assigned
    // here and by the pump. Returns false if it was dropped (input full: subscribers get a
    // gap over it) or the distributor is stopped (nobody is told).
    bool publish(WatchEvent event);
    // publish() for several events, which get consecutive offsets; returns how many were kept.
    std::size_t publish(std::vector<WatchEvent> events);
    // Uses the next `count` offsets for events the source itself lost (a change feed pruned
    // before it was read): every live subscriber gets a WatchGap over them with `reason`.
    void publish_gap(std::uint64_t count, std::string reason);
    // A new subscription (see the header comment for resume semantics). Throws InvalidInput
    // for a resume offset this distributor never assigned. After stop() the subscription
    // replays what the ring holds, then is closed.
    std::shared_ptr<Subscription> subscribe(SubscribeOptions options = {});
    // Pumps what was already published, closes every subscription (readers get what is
    // queued, then WatchClosed) and joins the pump. Idempotent; later publishes are dropped.
    void stop();
    EventDistributorStats stats() const;
    // Whether any subscription is open: lock-free, for publishers that build events only
    // when someone listens.
    bool has_subscribers() const;

private:
    std::shared_ptr<detail::DistributorCore> core_;  // owns and joins the pump thread
};

}  // namespace durable
