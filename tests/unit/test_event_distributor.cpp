// Tests of durable::EventDistributor: fan-out, filters, both overflow policies, resuming from
// the replay ring (exact seam, eviction by capacity and by age), input overflow, concurrent
// publishers and subscribers, and stopping with blocked readers. Every wait is bounded by
// kBound; no test asserts a duration. Age eviction runs on a ManualClock; the input-overflow
// test holds the pump inside Clock::now_ms() with a gated clock.
#include "durable/event_distributor.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "durable/errors.hpp"

namespace {

using namespace std::chrono_literals;
using durable::EventDistributor;
using durable::EventDistributorOptions;
using durable::OverflowPolicy;
using durable::SubscribeOptions;
using durable::Subscription;
using durable::WatchClosed;
using durable::WatchEvent;
using durable::WatchGap;
using durable::WatchItem;
using EventPtr = std::shared_ptr<const WatchEvent>;

constexpr auto kBound = 20s;  // how long any test waits before declaring a hang

WatchEvent make_event(const std::string& instance, std::int64_t seq) {
    return WatchEvent{instance, seq, durable::Json{{"type", "ActivityCompleted"}, {"seq", seq}}, 0, 0};
}

bool is_event(const WatchItem& item) { return std::holds_alternative<EventPtr>(item); }
bool is_gap(const WatchItem& item) { return std::holds_alternative<WatchGap>(item); }
bool is_closed(const WatchItem& item) { return std::holds_alternative<WatchClosed>(item); }
const WatchEvent& event_of(const WatchItem& item) { return *std::get<EventPtr>(item); }
const WatchGap& gap_of(const WatchItem& item) { return std::get<WatchGap>(item); }

// The next item; fails the test (instead of hanging) if none comes within kBound.
WatchItem next_item(Subscription& sub) {
    auto item = sub.next(kBound);
    REQUIRE_MESSAGE(item.has_value(), "no item within the test's bound");
    return std::move(*item);
}

// Reads `n` items.
std::vector<WatchItem> read_items(Subscription& sub, std::size_t n) {
    std::vector<WatchItem> items;
    for (std::size_t i = 0; i < n; ++i) items.push_back(next_item(sub));
    return items;
}

// Reads until an event with offset `last` arrives; returns everything read.
std::vector<WatchItem> read_through(Subscription& sub, std::uint64_t last) {
    std::vector<WatchItem> items;
    for (;;) {
        items.push_back(next_item(sub));
        const auto& item = items.back();
        REQUIRE_FALSE(is_closed(item));
        if (is_event(item) && event_of(item).offset == last) return items;
        if (is_gap(item) && gap_of(item).to_offset >= last) return items;
    }
}

std::vector<std::uint64_t> offsets_of(const std::vector<WatchItem>& items) {
    std::vector<std::uint64_t> out;
    for (const auto& item : items) {
        REQUIRE(is_event(item));
        out.push_back(event_of(item).offset);
    }
    return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> out;
    for (auto o = from; o <= to; ++o) out.push_back(o);
    return out;
}

void publish_n(EventDistributor& d, const std::string& instance, int n, int first_seq = 1) {
    for (int i = 0; i < n; ++i) REQUIRE(d.publish(make_event(instance, first_seq + i)));
}

// Threads a test starts; a failed REQUIRE on one of them is counted instead of terminating.
class Threads {
public:
    ~Threads() { join(); }
    template <class F>
    void spawn(F fn) {
        threads_.emplace_back([this, fn = std::move(fn)]() mutable {
            try {
                fn();
            } catch (...) {
                failures_.fetch_add(1);
            }
        });
    }
    // Joins every thread; returns how many failed.
    int join() {
        for (auto& t : threads_) t.join();
        threads_.clear();
        return failures_.load();
    }

private:
    std::vector<std::thread> threads_;
    std::atomic<int> failures_{0};
};

// A clock whose now_ms() blocks while the test holds its gate closed; lets a test freeze the
// pump (which reads the clock once per batch) at a known point.
class GatedClock final : public durable::Clock {
public:
    std::int64_t now_ms() const override {
        std::unique_lock lock(mu_);
        ++blocked_;
        cv_.notify_all();
        cv_.wait_for(lock, kBound, [&] { return open_; });
        --blocked_;
        return inner_.now_ms();
    }
    std::chrono::steady_clock::time_point steady_now() const override { return inner_.steady_now(); }
    void sleep_for(std::chrono::nanoseconds d) override { inner_.sleep_for(d); }

    void set_open(bool open) {
        {
            std::lock_guard lock(mu_);
            open_ = open;
        }
        cv_.notify_all();
    }
    // True once some thread is held in now_ms().
    bool wait_blocked() const {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, kBound, [&] { return blocked_ > 0 && !open_; });
    }

private:
    durable::ManualClock inner_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    bool open_ = true;        // guarded by mu_
    mutable int blocked_ = 0;  // guarded by mu_
};

}  // namespace

TEST_CASE("event distributor: every subscriber gets every event once, in offset order") {
    EventDistributor d;
    std::vector<std::shared_ptr<Subscription>> subs;
    for (int i = 0; i < 3; ++i) subs.push_back(d.subscribe());

    constexpr int kEvents = 200;
    for (int i = 0; i < kEvents; ++i) REQUIRE(d.publish(make_event("inst-" + std::to_string(i % 3), i / 3 + 1)));

    for (auto& sub : subs) {
        auto items = read_items(*sub, kEvents);
        CHECK(offsets_of(items) == range(1, kEvents));
        for (int i = 0; i < kEvents; ++i) {
            const auto& ev = event_of(items[static_cast<std::size_t>(i)]);
            CHECK(ev.instance_id == "inst-" + std::to_string(i % 3));
            CHECK(ev.seq == i / 3 + 1);
            CHECK(ev.event.at("seq") == i / 3 + 1);
        }
        CHECK_FALSE(sub->next(0ms).has_value());  // nothing extra
    }
    auto stats = d.stats();
    CHECK(stats.published == kEvents);
    CHECK(stats.next_offset == kEvents + 1);
    CHECK(stats.subscribers == 3);
}

TEST_CASE("event distributor: a subscription filtered on an instance sees only that instance") {
    EventDistributor d;
    auto all = d.subscribe();
    auto only_a = d.subscribe(SubscribeOptions{.instance_id = "a"});
    auto only_c = d.subscribe(SubscribeOptions{.instance_id = "c"});
    CHECK(only_a->instance_id() == "a");

    for (int seq = 1; seq <= 20; ++seq) {
        REQUIRE(d.publish(make_event("a", seq)));
        REQUIRE(d.publish(make_event("b", seq)));
    }
    read_through(*all, 40);  // the pump has handled everything once `all` has it

    auto items = read_items(*only_a, 20);
    for (std::size_t i = 0; i < items.size(); ++i) {
        CHECK(event_of(items[i]).instance_id == "a");
        CHECK(event_of(items[i]).seq == static_cast<std::int64_t>(i) + 1);
        CHECK(event_of(items[i]).offset == 2 * i + 1);
    }
    CHECK_FALSE(only_a->next(0ms).has_value());
    CHECK_FALSE(only_c->next(0ms).has_value());
}

TEST_CASE("event distributor: a slow DropOldest subscriber stalls nobody and is told of the gap") {
    EventDistributor d;
    auto slow = d.subscribe(SubscribeOptions{.queue_capacity = 4, .overflow = OverflowPolicy::DropOldest});
    auto fast = d.subscribe(SubscribeOptions{.queue_capacity = 16});

    // The fast reader reads while events are published; the slow one never reads meanwhile.
    constexpr std::uint64_t kEvents = 1000;
    std::vector<WatchItem> fast_items;
    Threads threads;
    threads.spawn([&] { fast_items = read_through(*fast, kEvents); });
    publish_n(d, "i", static_cast<int>(kEvents));
    REQUIRE(threads.join() == 0);

    // The fast reader had a queue of 16 and read as it went: whether it saw gaps depends on
    // scheduling, but it saw the last event, so the pump was never held up by `slow`.
    REQUIRE(is_event(fast_items.back()));
    CHECK(event_of(fast_items.back()).offset == kEvents);

    // The slow reader keeps the newest 4, and one gap covering everything dropped before them.
    auto first = next_item(*slow);
    REQUIRE(is_gap(first));
    CHECK(gap_of(first).from_offset == 1);
    CHECK(gap_of(first).to_offset == kEvents - 4);
    CHECK(gap_of(first).reason.find("overflowed") != std::string::npos);
    CHECK(offsets_of(read_items(*slow, 4)) == range(kEvents - 3, kEvents));
    CHECK_FALSE(slow->next(0ms).has_value());
    CHECK(d.stats().subscriber_dropped >= kEvents - 4);
}

TEST_CASE("event distributor: a fast subscriber gets all events while a slow one's queue is full") {
    EventDistributor d;
    auto slow = d.subscribe(SubscribeOptions{.queue_capacity = 2, .overflow = OverflowPolicy::DropOldest});
    auto slow_disconnect = d.subscribe(SubscribeOptions{.queue_capacity = 2, .overflow = OverflowPolicy::Disconnect});
    auto fast = d.subscribe(SubscribeOptions{.queue_capacity = 5000});
    constexpr std::uint64_t kEvents = 3000;
    publish_n(d, "i", static_cast<int>(kEvents));
    CHECK(offsets_of(read_items(*fast, kEvents)) == range(1, kEvents));
    CHECK_FALSE(fast->next(0ms).has_value());

    auto gap = next_item(*slow);
    REQUIRE(is_gap(gap));
    CHECK(gap_of(gap).from_offset == 1);
    CHECK(gap_of(gap).to_offset == kEvents - 2);
    CHECK(offsets_of(read_items(*slow, 2)) == range(kEvents - 1, kEvents));

    CHECK(offsets_of(read_items(*slow_disconnect, 2)) == range(1, 2));
    CHECK(is_closed(next_item(*slow_disconnect)));
}

TEST_CASE("event distributor: a slow Disconnect subscriber is closed, then resumes without loss") {
    EventDistributor d;
    auto slow = d.subscribe(SubscribeOptions{.queue_capacity = 4, .overflow = OverflowPolicy::Disconnect});
    auto fast = d.subscribe(SubscribeOptions{.queue_capacity = 2000});
    constexpr std::uint64_t kEvents = 1000;
    publish_n(d, "i", static_cast<int>(kEvents));
    CHECK(offsets_of(read_items(*fast, kEvents)) == range(1, kEvents));

    // What was queued before the overflow is still delivered, then the close and its reason.
    CHECK(offsets_of(read_items(*slow, 4)) == range(1, 4));
    auto closed = next_item(*slow);
    REQUIRE(is_closed(closed));
    CHECK(std::get<WatchClosed>(closed).reason.find("resume_after_offset") != std::string::npos);
    CHECK(is_closed(next_item(*slow)));  // sticky
    auto stats = d.stats();
    CHECK(stats.disconnected == 1);
    CHECK(stats.subscribers == 1);

    // Resuming after the last offset read replays the rest from the ring. Its queue is far
    // smaller than the replay and it uses Disconnect too: catching up must not overflow it.
    auto again = d.subscribe(SubscribeOptions{
        .resume_after_offset = 4, .queue_capacity = 16, .overflow = OverflowPolicy::Disconnect});
    CHECK(offsets_of(read_items(*again, kEvents - 4)) == range(5, kEvents));
    publish_n(d, "i", 3, static_cast<int>(kEvents) + 1);
    CHECK(offsets_of(read_items(*again, 3)) == range(kEvents + 1, kEvents + 3));
    CHECK_FALSE(again->next(0ms).has_value());
}

TEST_CASE("event distributor: resuming from the ring joins the live stream at the exact seam") {
    EventDistributor d;
    auto witness = d.subscribe(SubscribeOptions{.queue_capacity = 10'000});
    publish_n(d, "a", 50);
    read_through(*witness, 50);

    // Publishing continues on another thread while the resumed subscriber replays and joins.
    auto resumed = d.subscribe(SubscribeOptions{.resume_after_offset = 20, .queue_capacity = 8});
    auto resumed_filtered =
        d.subscribe(SubscribeOptions{.instance_id = "b", .resume_after_offset = 45, .queue_capacity = 3});
    Threads threads;
    threads.spawn([&] {
        for (int i = 51; i <= 2000; ++i) REQUIRE(d.publish(make_event(i % 2 ? "a" : "b", i)));
    });
    std::vector<WatchItem> items = read_through(*resumed, 2000);
    std::vector<WatchItem> filtered = read_through(*resumed_filtered, 2000);  // 2000 is a "b"
    REQUIRE(threads.join() == 0);

    // Queue 8 with DropOldest: a gap is possible if this reader fell behind; everything it
    // did not get is covered by a gap, nothing is delivered twice, offsets only go up.
    std::uint64_t expected = 21;
    for (const auto& item : items) {
        if (is_event(item)) {
            CHECK(event_of(item).offset == expected);
            expected = event_of(item).offset + 1;
        } else {
            REQUIRE(is_gap(item));
            CHECK(gap_of(item).from_offset == expected);
            expected = gap_of(item).to_offset + 1;
        }
    }
    CHECK(expected == 2001);

    std::uint64_t last = 45;
    std::size_t events = 0;
    for (const auto& item : filtered) {
        if (is_event(item)) {
            CHECK(event_of(item).instance_id == "b");
            CHECK(event_of(item).offset > last);
            last = event_of(item).offset;
            ++events;
        } else {
            REQUIRE(is_gap(item));
            CHECK(gap_of(item).from_offset > last);
            last = gap_of(item).to_offset;
        }
    }
    CHECK(events > 0);
    CHECK(d.stats().input_dropped == 0);
}

TEST_CASE("event distributor: a resume with enough queue room gets every event across the seam") {
    EventDistributor d;
    auto witness = d.subscribe(SubscribeOptions{.queue_capacity = 10'000});
    publish_n(d, "a", 100);
    read_through(*witness, 100);

    auto resumed = d.subscribe(SubscribeOptions{.resume_after_offset = 60, .queue_capacity = 10'000});
    Threads threads;
    threads.spawn([&] { publish_n(d, "a", 900, 101); });
    auto items = read_items(*resumed, 940);
    REQUIRE(threads.join() == 0);
    CHECK(offsets_of(items) == range(61, 1000));
    CHECK_FALSE(resumed->next(0ms).has_value());

    // Resuming at the very end replays nothing and goes straight to live events.
    auto at_end = d.subscribe(SubscribeOptions{.resume_after_offset = 1000});
    CHECK_FALSE(at_end->next(0ms).has_value());
    publish_n(d, "a", 1, 1001);
    CHECK(offsets_of(read_items(*at_end, 1)) == range(1001, 1001));
}

TEST_CASE("event distributor: resuming after an offset evicted by ring capacity starts with a gap") {
    EventDistributor d(EventDistributorOptions{.ring_capacity = 10});
    auto witness = d.subscribe();
    publish_n(d, "a", 30);
    read_through(*witness, 30);
    CHECK(d.stats().ring_size == 10);
    CHECK(d.stats().ring_first_offset == 21);

    auto evicted = d.subscribe(SubscribeOptions{.resume_after_offset = 5});
    auto gap = next_item(*evicted);
    REQUIRE(is_gap(gap));
    CHECK(gap_of(gap).from_offset == 6);
    CHECK(gap_of(gap).to_offset == 20);
    CHECK(gap_of(gap).reason.find("evicted") != std::string::npos);
    CHECK(offsets_of(read_items(*evicted, 10)) == range(21, 30));

    auto kept = d.subscribe(SubscribeOptions{.resume_after_offset = 20});
    CHECK(offsets_of(read_items(*kept, 10)) == range(21, 30));
    CHECK_FALSE(kept->next(0ms).has_value());
}

TEST_CASE("event distributor: resuming after an offset evicted by age starts with a gap") {
    auto clock = std::make_shared<durable::ManualClock>();
    EventDistributor d(EventDistributorOptions{.ring_max_age = 60s, .clock = clock});
    auto witness = d.subscribe();
    publish_n(d, "a", 10);
    read_through(*witness, 10);  // pumped (and stamped) at t0
    clock->advance(30s);
    publish_n(d, "a", 10, 11);
    read_through(*witness, 20);  // pumped at t0 + 30 s
    auto first = d.subscribe(SubscribeOptions{.resume_after_offset = 0});
    CHECK(offsets_of(read_items(*first, 20)) == range(1, 20));  // nothing is too old yet

    clock->advance(31s);  // the first ten are now 61 s old
    auto resumed = d.subscribe(SubscribeOptions{.resume_after_offset = 0});
    auto gap = next_item(*resumed);
    REQUIRE(is_gap(gap));
    CHECK(gap_of(gap).from_offset == 1);
    CHECK(gap_of(gap).to_offset == 10);
    auto rest = read_items(*resumed, 10);
    CHECK(offsets_of(rest) == range(11, 20));
    CHECK(event_of(rest.front()).published_at_ms == clock->now_ms() - 31'000);
    CHECK(d.stats().ring_first_offset == 11);

    clock->advance(30s);  // now all of them
    auto late = d.subscribe(SubscribeOptions{.resume_after_offset = 12});
    gap = next_item(*late);
    REQUIRE(is_gap(gap));
    CHECK(gap_of(gap).from_offset == 13);
    CHECK(gap_of(gap).to_offset == 20);
    CHECK_FALSE(late->next(0ms).has_value());
    CHECK(d.stats().ring_size == 0);
}

TEST_CASE("event distributor: a full pump input drops events and every subscriber gets the gap") {
    auto clock = std::make_shared<GatedClock>();
    EventDistributor d(EventDistributorOptions{.input_capacity = 8, .clock = clock});
    auto all = d.subscribe();
    auto other = d.subscribe(SubscribeOptions{.instance_id = "other"});

    clock->set_open(false);
    REQUIRE(d.publish(make_event("a", 1)));
    REQUIRE(clock->wait_blocked());  // the pump holds offset 1 and waits in now_ms()
    std::vector<bool> kept;
    for (int seq = 2; seq <= 21; ++seq) kept.push_back(d.publish(make_event("a", seq)));
    clock->set_open(true);
    CHECK(std::count(kept.begin(), kept.end(), true) == 8);  // offsets 2..9
    CHECK_FALSE(kept[8]);                                    // offset 10 onwards dropped
    auto items = read_items(*all, 10);  // the pump has drained its input once the gap is here
    REQUIRE(d.publish(make_event("a", 22)));
    items.push_back(next_item(*all));
    CHECK(offsets_of(std::vector<WatchItem>(items.begin(), items.begin() + 9)) == range(1, 9));
    REQUIRE(is_gap(items[9]));
    CHECK(gap_of(items[9]).from_offset == 10);
    CHECK(gap_of(items[9]).to_offset == 21);
    CHECK(gap_of(items[9]).reason.find("input queue") != std::string::npos);
    CHECK(event_of(items[10]).offset == 22);

    auto gap = next_item(*other);  // filtered, but it cannot know what it missed
    REQUIRE(is_gap(gap));
    CHECK(gap_of(gap).from_offset == 10);
    CHECK(gap_of(gap).to_offset == 21);

    // The ring keeps the hole: a resume through it gets the same gap in the same place.
    auto resumed = d.subscribe(SubscribeOptions{.resume_after_offset = 7});
    auto replay = read_items(*resumed, 4);
    CHECK(offsets_of(std::vector<WatchItem>(replay.begin(), replay.begin() + 2)) == range(8, 9));
    REQUIRE(is_gap(replay[2]));
    CHECK(gap_of(replay[2]).from_offset == 10);
    CHECK(gap_of(replay[2]).to_offset == 21);
    CHECK(event_of(replay[3]).offset == 22);

    auto stats = d.stats();
    CHECK(stats.published == 10);
    CHECK(stats.input_dropped == 12);
}

TEST_CASE("event distributor: concurrent publishers and subscribers see each event once, in order") {
    constexpr int kPublishers = 8;
    constexpr int kPerPublisher = 500;
    constexpr std::uint64_t kTotal = kPublishers * kPerPublisher;
    EventDistributor d(EventDistributorOptions{.ring_capacity = 2 * kTotal});

    std::vector<std::shared_ptr<Subscription>> subs;
    for (int i = 0; i < 3; ++i) subs.push_back(d.subscribe(SubscribeOptions{.queue_capacity = kTotal}));
    subs.push_back(d.subscribe(SubscribeOptions{.instance_id = "p3", .queue_capacity = kTotal}));

    std::vector<std::vector<WatchItem>> seen(subs.size() + 1);
    Threads threads;
    for (std::size_t i = 0; i < subs.size(); ++i) {
        std::size_t n = subs[i]->instance_id().empty() ? kTotal : kPerPublisher;
        threads.spawn([&, i, n] { seen[i] = read_items(*subs[i], n); });
    }
    for (int p = 0; p < kPublishers; ++p) {
        threads.spawn([&, p] {
            for (int seq = 1; seq <= kPerPublisher; ++seq) REQUIRE(d.publish(make_event("p" + std::to_string(p), seq)));
        });
    }
    // A latecomer resumes from the start while the publishers are running.
    threads.spawn([&] {
        auto late = d.subscribe(SubscribeOptions{.resume_after_offset = 0, .queue_capacity = kTotal});
        seen.back() = read_items(*late, kTotal);
    });
    REQUIRE(threads.join() == 0);

    for (std::size_t i = 0; i < seen.size(); ++i) {
        CAPTURE(i);
        bool filtered = i == 3;
        std::uint64_t last_offset = 0;
        std::map<std::string, std::int64_t> last_seq;
        std::set<std::uint64_t> offsets;
        for (const auto& item : seen[i]) {
            REQUIRE(is_event(item));  // no drops: queues and ring hold everything
            const auto& ev = event_of(item);
            CHECK(ev.offset > last_offset);
            last_offset = ev.offset;
            offsets.insert(ev.offset);
            CHECK(ev.seq == last_seq[ev.instance_id] + 1);  // each instance's events in order
            last_seq[ev.instance_id] = ev.seq;
            if (filtered) CHECK(ev.instance_id == "p3");
        }
        if (!filtered) CHECK(offsets.size() == kTotal);
        CHECK(last_seq.size() == (filtered ? 1u : static_cast<std::size_t>(kPublishers)));
    }
    for (auto& sub : subs) CHECK_FALSE(sub->next(0ms).has_value());
    CHECK(d.stats().published == kTotal);
}

TEST_CASE("event distributor: stop() wakes blocked readers with Closed after what was queued") {
    EventDistributor d;
    auto with_backlog = d.subscribe();
    publish_n(d, "a", 3);

    std::vector<std::shared_ptr<Subscription>> blocked;
    for (int i = 0; i < 3; ++i) blocked.push_back(d.subscribe(SubscribeOptions{.instance_id = "nobody"}));
    std::vector<std::optional<WatchItem>> results(blocked.size());
    Threads readers;
    for (std::size_t i = 0; i < blocked.size(); ++i) {
        readers.spawn([&, i] { results[i] = blocked[i]->next(kBound); });
    }
    d.stop();
    REQUIRE(readers.join() == 0);
    for (auto& result : results) {
        REQUIRE(result.has_value());  // woken by stop(), not by the bound running out
        REQUIRE(is_closed(*result));
        CHECK(std::get<WatchClosed>(*result).reason.find("stopped") != std::string::npos);
    }

    // Published before stop(): delivered, then Closed.
    CHECK(offsets_of(read_items(*with_backlog, 3)) == range(1, 3));
    CHECK(is_closed(next_item(*with_backlog)));

    CHECK_FALSE(d.publish(make_event("a", 4)));
    CHECK(is_closed(next_item(*d.subscribe())));
    // A resume after stop still gets what the ring holds, then Closed.
    auto resumed = d.subscribe(SubscribeOptions{.resume_after_offset = 1});
    CHECK(offsets_of(read_items(*resumed, 2)) == range(2, 3));
    CHECK(is_closed(next_item(*resumed)));
    d.stop();  // idempotent
    CHECK(d.stats().subscribers == 0);
}

TEST_CASE("event distributor: close() wakes a blocked reader and discards what was queued") {
    EventDistributor d;
    auto sub = d.subscribe();
    auto waiting = d.subscribe(SubscribeOptions{.instance_id = "nobody"});
    publish_n(d, "a", 5);
    CHECK(is_event(next_item(*sub)));
    sub->close();
    auto item = next_item(*sub);
    REQUIRE(is_closed(item));
    CHECK(std::get<WatchClosed>(item).reason.find("subscriber") != std::string::npos);

    std::optional<WatchItem> result;
    Threads reader;
    reader.spawn([&] { result = waiting->next(kBound); });
    waiting->close();
    REQUIRE(reader.join() == 0);
    REQUIRE(result.has_value());
    CHECK(is_closed(*result));
    CHECK(d.stats().subscribers == 0);
}

TEST_CASE("event distributor: a subscription outlives its distributor") {
    std::shared_ptr<Subscription> sub;
    {
        EventDistributor d;
        sub = d.subscribe();
        publish_n(d, "a", 2);
    }
    CHECK(offsets_of(read_items(*sub, 2)) == range(1, 2));
    CHECK(is_closed(next_item(*sub)));
}

TEST_CASE("event distributor: rejects a resume offset it never assigned, and zero capacities") {
    EventDistributor d;
    publish_n(d, "a", 3);
    CHECK_NOTHROW(d.subscribe(SubscribeOptions{.resume_after_offset = 3}));
    CHECK_THROWS_AS(d.subscribe(SubscribeOptions{.resume_after_offset = 4}), durable::InvalidInput);
    CHECK_THROWS_AS(EventDistributor(EventDistributorOptions{.ring_capacity = 0}), durable::InvalidInput);
}
