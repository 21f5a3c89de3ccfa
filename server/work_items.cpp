// Work items between producers and worker streams (see work_items.hpp).
#include "server/work_items.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace durable::server {

struct WorkItemHub::Stream {
    std::deque<std::string> to_send;       // guarded by the hub's mu_: assigned, not yet taken by next()
    std::vector<std::string> outstanding;  // guarded by the hub's mu_: assigned, not yet answered (to_send too)
    bool ended = false;                    // guarded by the hub's mu_
    std::string peer;                      // set at open
    std::function<void()> wake;            // set at open
};

std::string activity_key(const std::string& instance_id, std::int64_t task_id) {
    return fmt::format("a:{}:{}", instance_id, task_id);
}

std::string orchestrator_key(const std::string& instance_id) { return "o:" + instance_id; }

WorkItemHub::WorkItemHub(std::size_t max_outstanding) : max_(std::max<std::size_t>(1, max_outstanding)) {}

std::shared_ptr<WorkItemHub::Stream> WorkItemHub::open_stream(std::string peer, std::function<void()> wake_fn) {
    Wakes wakes;
    std::shared_ptr<Stream> s;
    {
        std::lock_guard lock(mu_);
        if (streams_ended_) return nullptr;
        s = std::make_shared<Stream>();
        s->peer = std::move(peer);
        s->wake = std::move(wake_fn);
        streams_.push_back(s);
        assign_locked(wakes);
    }
    wake(wakes);
    return s;
}

void WorkItemHub::wake(const Wakes& wakes) {
    for (const auto& s : wakes) {
        if (s->wake) s->wake();
    }
}

void WorkItemHub::assign_locked(Wakes& wakes) {
    bool assigned = false;
    while (!queue_.empty()) {
        Stream* best = nullptr;
        const std::shared_ptr<Stream>* best_ref = nullptr;
        for (auto& s : streams_) {
            if (s->ended || s->outstanding.size() >= max_) continue;
            if (!best || s->outstanding.size() < best->outstanding.size()) {
                best = s.get();
                best_ref = &s;
            }
        }
        if (!best) break;
        auto key = std::move(queue_.front());
        queue_.pop_front();
        auto it = items_.find(key);
        if (it == items_.end()) continue;  // withdrawn while queued
        it->second.stream = best;
        best->to_send.push_back(key);
        best->outstanding.push_back(std::move(key));
        assigned = true;
        if (best->wake && std::find(wakes.begin(), wakes.end(), *best_ref) == wakes.end()) wakes.push_back(*best_ref);
    }
    if (assigned) cv_.notify_all();
}

std::optional<::WorkItem> WorkItemHub::next(const std::shared_ptr<Stream>& s,
                                            std::chrono::steady_clock::time_point until) {
    std::unique_lock lock(mu_);
    for (;;) {
        if (s->ended) return std::nullopt;
        while (!s->to_send.empty()) {
            auto key = std::move(s->to_send.front());
            s->to_send.pop_front();
            auto it = items_.find(key);
            if (it != items_.end() && it->second.stream == s.get()) return *it->second.item;
        }
        if (cv_.wait_until(lock, until) == std::cv_status::timeout) {
            if (s->ended || s->to_send.empty()) return std::nullopt;
        }
    }
}

std::vector<std::shared_ptr<const ::WorkItem>> WorkItemHub::take(const std::shared_ptr<Stream>& s, std::size_t max) {
    std::vector<std::shared_ptr<const ::WorkItem>> out;
    std::lock_guard lock(mu_);
    if (s->ended) return out;
    while (!s->to_send.empty() && out.size() < max) {
        auto key = std::move(s->to_send.front());
        s->to_send.pop_front();
        auto it = items_.find(key);
        if (it != items_.end() && it->second.stream == s.get()) out.push_back(it->second.item);
    }
    return out;
}

bool WorkItemHub::ended(const std::shared_ptr<Stream>& s) const {
    std::lock_guard lock(mu_);
    return s->ended;
}

void WorkItemHub::close_stream(const std::shared_ptr<Stream>& s) {
    Wakes wakes;
    std::unique_lock lock(mu_);
    s->ended = true;
    // Given back in the order they were sent, ahead of anything queued since.
    for (auto k = s->outstanding.rbegin(); k != s->outstanding.rend(); ++k) {
        auto it = items_.find(*k);
        if (it == items_.end() || it->second.stream != s.get()) continue;
        it->second.stream = nullptr;
        queue_.push_front(*k);
    }
    s->outstanding.clear();
    s->to_send.clear();
    std::erase(streams_, s);
    assign_locked(wakes);
    cv_.notify_all();
    lock.unlock();
    wake(wakes);
}

bool WorkItemHub::submit(const std::string& key, ::WorkItem item, Done done) {
    Wakes wakes;
    {
        std::lock_guard lock(mu_);
        if (stopped_ || items_.count(key) > 0) return false;
        items_.emplace(key, Item{std::make_shared<const ::WorkItem>(std::move(item)), std::move(done), nullptr});
        queue_.push_back(key);
        assign_locked(wakes);
    }
    wake(wakes);
    return true;
}

void WorkItemHub::detach_locked(const std::string& key, Item& item) {
    if (item.stream) {
        std::erase(item.stream->outstanding, key);
        std::erase(item.stream->to_send, key);
        item.stream = nullptr;
    } else {
        std::erase(queue_, key);
    }
}

void WorkItemHub::withdraw(const std::string& key) {
    Wakes wakes;
    {
        std::lock_guard lock(mu_);
        auto it = items_.find(key);
        if (it == items_.end()) return;
        detach_locked(key, it->second);
        items_.erase(it);
        assign_locked(wakes);  // a place on a stream may have come free
    }
    wake(wakes);
}

bool WorkItemHub::complete(const std::string& key, WorkResult r, const std::string& peer) {
    Done done;
    Wakes wakes;
    {
        std::lock_guard lock(mu_);
        auto it = items_.find(key);
        if (it == items_.end() || stopped_) return false;
        if (!peer.empty() && key.starts_with("o:")) {
            const Stream* s = it->second.stream;
            if (!s || s->ended || s->peer != peer) return false;
        }
        detach_locked(key, it->second);
        done = std::move(it->second.done);
        items_.erase(it);
        assign_locked(wakes);
    }
    wake(wakes);
    if (done) done(std::move(r));
    return true;
}

void WorkItemHub::end_streams() {
    Wakes wakes;
    {
        std::lock_guard lock(mu_);
        streams_ended_ = true;
        for (auto& s : streams_) {
            s->ended = true;
            if (s->wake) wakes.push_back(s);
        }
        cv_.notify_all();
    }
    wake(wakes);
}

void WorkItemHub::stop() {
    std::vector<Done> refused;
    Wakes wakes;
    {
        std::lock_guard lock(mu_);
        streams_ended_ = true;
        stopped_ = true;
        for (auto& s : streams_) {
            s->ended = true;
            if (s->wake) wakes.push_back(s);
        }
        for (auto& [key, item] : items_) refused.push_back(std::move(item.done));
        items_.clear();
        queue_.clear();
        cv_.notify_all();
    }
    wake(wakes);
    for (auto& done : refused) {
        if (!done) continue;
        WorkResult r;
        r.kind = WorkResult::Kind::Refused;
        r.refused = "the server is stopping";
        done(std::move(r));
    }
}

WorkItemHub::Stats WorkItemHub::stats() const {
    std::lock_guard lock(mu_);
    Stats st;
    st.queued = queue_.size();
    st.outstanding = items_.size() - queue_.size();
    st.streams = streams_.size();
    return st;
}

}  // namespace durable::server
