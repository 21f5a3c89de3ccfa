// The change-feed follower: store change feed -> the process's event distributor.
#include "runtime/change_feed.hpp"

#include <pthread.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "durable/errors.hpp"
#include "store/named_thread.hpp"

namespace durable::detail {
namespace {

constexpr int kRowsPerRead = 512;

}  // namespace

ChangeFeedFollower::ChangeFeedFollower(std::shared_ptr<store::Store> store, std::shared_ptr<CompletionHub> hub,
                                       std::shared_ptr<EventDistributor> events,
                                       std::chrono::milliseconds poll_interval)
    : store_(std::move(store)), hub_(std::move(hub)), events_(std::move(events)), poll_interval_(poll_interval) {
    cursor_ = store_->change_feed_head();
    thread_ = durable::detail::named_thread("durable-feed", [this] { run(); });
}

ChangeFeedFollower::~ChangeFeedFollower() {
    stop_ = true;
    hub_->notify_progress();  // wakes the thread if it waits on the hub
    if (thread_.joinable()) thread_.join();
}

void ChangeFeedFollower::run() {
    std::int64_t last_version = -1;
    bool failing = false;
    while (!stop_) {
        auto seen = hub_->progress();
        try {
            std::int64_t version = store_->change_counter();
            if (version != last_version) {
                drain();
                last_version = version;  // only once everything up to it is read
            }
            if (failing) spdlog::info("change feed of {}: reading again", store_->describe());
            failing = false;
        } catch (const std::exception& e) {
            if (!failing) spdlog::warn("change feed of {}: {}; retrying", store_->describe(), e.what());
            failing = true;
        }
        hub_->wait_progress(seen, std::chrono::steady_clock::now() + poll_interval_);
    }
}

void ChangeFeedFollower::drain() {
    for (;;) {
        std::int64_t cursor = cursor_.load();
        auto rows = store_->read_changes(cursor, kRowsPerRead);
        if (rows.empty()) return;
        if (rows.front().seq > cursor + 1) {
            auto lost = static_cast<std::uint64_t>(rows.front().seq - cursor - 1);
            rows_lost_ += lost;
            events_->publish_gap(lost, fmt::format("{} change-feed rows were pruned before this process read them "
                                                   "(it fell behind the feed's retention); read the instances' "
                                                   "history from the store",
                                                   lost));
        }
        rows_read_ += rows.size();
        if (events_->has_subscribers()) {
            std::vector<WatchEvent> batch;
            for (const auto& row : rows) {
                for (auto& h : store_->get_history(row.instance_id, row.first_seq, static_cast<int>(row.count))) {
                    if (h.seq >= row.first_seq + row.count) break;
                    WatchEvent ev;
                    ev.instance_id = row.instance_id;
                    ev.seq = h.seq;
                    ev.event = nlohmann::json::parse(h.event, nullptr, false);
                    ev.name = row.name;
                    ev.status = std::string(to_string(row.status));
                    ev.feed_seq = row.seq;
                    batch.push_back(std::move(ev));
                }
            }
            events_->publish(std::move(batch));
        }
        cursor_ = rows.back().seq;
        if (static_cast<int>(rows.size()) < kRowsPerRead) return;
    }
}

}  // namespace durable::detail
