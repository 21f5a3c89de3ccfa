// AsyncWaits: one thread runs the checks of every asynchronous wait of a process.
#include "runtime/async_waits.hpp"
#include "store/named_thread.hpp"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <spdlog/spdlog.h>
#include <thread>
#include <unordered_map>
#include <vector>

namespace durable::detail {

namespace {

using steady = std::chrono::steady_clock;

struct Wait {
    std::string id;
    steady::time_point deadline;
    steady::time_point wake;          // the time its timer entry is for
    std::chrono::milliseconds poll;   // the next poll interval
    std::function<bool(WakeReason)> check;
    bool done = false;                // only the waits' thread touches it
};

// Runs one check; a check that throws ends its wait (its caller was told nothing it can use,
// but the thread goes on for the others).
bool run_check(Wait& w, WakeReason why) {
    try {
        return w.check(why);
    } catch (const std::exception& e) {
        spdlog::error("an asynchronous wait for instance '{}' threw: {}", w.id, e.what());
    } catch (...) {
        spdlog::error("an asynchronous wait for instance '{}' threw", w.id);
    }
    return true;
}

}  // namespace

struct AsyncWaits::State {
    mutable std::mutex mu;
    std::condition_variable cv;
    bool stop = false;                                                        // guarded by mu
    bool started = false;                                                     // guarded by mu
    std::unordered_map<std::string, std::vector<std::shared_ptr<Wait>>> by_id;  // open waits; guarded by mu
    std::multimap<steady::time_point, std::weak_ptr<Wait>> timers;            // guarded by mu
    std::deque<std::shared_ptr<Wait>> added;                                  // guarded by mu
    std::vector<std::string> notified;                                        // guarded by mu
    std::deque<std::function<void()>> jobs;                                   // guarded by mu
    std::size_t open = 0;                                                     // guarded by mu
    std::thread thread;  // started under mu by the first add/post; joined by ~AsyncWaits
};

AsyncWaits::AsyncWaits() : state_(std::make_shared<State>()) {}

AsyncWaits::~AsyncWaits() {
    std::thread t;
    {
        std::lock_guard lock(state_->mu);
        state_->stop = true;
        t = std::move(state_->thread);
    }
    state_->cv.notify_all();
    if (!t.joinable()) return;
    if (t.get_id() == std::this_thread::get_id()) {
        // Destroyed by a callback on the thread itself: it holds the state and ends the open
        // waits as soon as that callback returns; nobody is left to join it.
        t.detach();
        return;
    }
    t.join();
}

void AsyncWaits::start_locked(const std::shared_ptr<State>& s) {
    if (s->started) return;
    s->started = true;
    s->thread = durable::detail::named_thread("durable-waits", [s] { run(s); });
}

void AsyncWaits::add(std::string id, steady::time_point deadline, std::chrono::milliseconds first_poll,
                     std::function<bool(WakeReason)> check) {
    auto w = std::make_shared<Wait>();
    w->id = std::move(id);
    w->deadline = deadline;
    w->poll = std::max(first_poll, std::chrono::milliseconds(1));
    w->check = std::move(check);
    {
        std::lock_guard lock(state_->mu);
        start_locked(state_);
        if (state_->stop) {
            // Added while the hub goes away: ended at once.
        } else {
            state_->by_id[w->id].push_back(w);
            state_->added.push_back(w);
            ++state_->open;
            w = nullptr;
        }
    }
    if (w) {
        run_check(*w, WakeReason::Closing);
        return;
    }
    state_->cv.notify_one();
}

void AsyncWaits::notify(const std::string& id) {
    {
        std::lock_guard lock(state_->mu);
        if (state_->by_id.find(id) == state_->by_id.end()) return;
        state_->notified.push_back(id);
    }
    state_->cv.notify_one();
}

void AsyncWaits::post(std::function<void()> job) {
    {
        std::lock_guard lock(state_->mu);
        start_locked(state_);
        state_->jobs.push_back(std::move(job));
    }
    state_->cv.notify_one();
}

std::size_t AsyncWaits::open() const {
    std::lock_guard lock(state_->mu);
    return state_->open;
}

void AsyncWaits::run(const std::shared_ptr<State>& s) {
    std::unique_lock lock(s->mu);
    for (;;) {
        if (s->stop) break;
        auto now = steady::now();
        bool due = !s->timers.empty() && s->timers.begin()->first <= now;
        if (s->jobs.empty() && s->added.empty() && s->notified.empty() && !due) {
            if (s->timers.empty()) {
                s->cv.wait(lock);
            } else {
                s->cv.wait_until(lock, s->timers.begin()->first);
            }
            continue;
        }
        auto jobs = std::move(s->jobs);
        s->jobs.clear();
        std::vector<std::pair<std::shared_ptr<Wait>, WakeReason>> checks;
        for (auto& w : s->added) checks.emplace_back(std::move(w), WakeReason::Added);
        s->added.clear();
        for (const auto& id : s->notified) {
            if (auto it = s->by_id.find(id); it != s->by_id.end()) {
                for (auto& w : it->second) checks.emplace_back(w, WakeReason::Notified);
            }
        }
        s->notified.clear();
        while (!s->timers.empty() && s->timers.begin()->first <= now) {
            auto [at, weak] = *s->timers.begin();
            s->timers.erase(s->timers.begin());
            auto w = weak.lock();
            if (!w || w->done || w->wake != at) continue;  // ended, or re-armed since
            checks.emplace_back(std::move(w), at >= w->deadline ? WakeReason::Deadline : WakeReason::Poll);
        }
        lock.unlock();
        for (auto& job : jobs) {
            try {
                job();
            } catch (const std::exception& e) {
                spdlog::error("an asynchronous client job threw: {}", e.what());
            }
        }
        jobs.clear();
        std::vector<std::shared_ptr<Wait>> ended, rearm;
        for (auto& [w, why] : checks) {
            if (w->done) continue;  // ended by an earlier check of this round
            // A wait checked at its deadline ends, whatever its check says.
            if (run_check(*w, why) || why == WakeReason::Deadline) {
                w->done = true;
                ended.push_back(w);
            } else if (why != WakeReason::Notified || w->wake <= now) {
                rearm.push_back(w);
            }
        }
        checks.clear();
        lock.lock();
        now = steady::now();
        for (auto& w : rearm) {
            if (w->done) continue;
            auto next = std::min(now + w->poll, w->deadline);
            w->poll = std::min(w->poll * 2, kMaxPoll);
            w->wake = next;
            s->timers.emplace(next, w);
        }
        for (auto& w : ended) {
            auto it = s->by_id.find(w->id);
            if (it == s->by_id.end()) continue;
            std::erase(it->second, w);
            if (it->second.empty()) s->by_id.erase(it);
            --s->open;
        }
        // The callbacks' captures go here, with the lock released (they may hold the last
        // handle to the database, whose hub owns this object).
        lock.unlock();
        ended.clear();
        rearm.clear();
        lock.lock();
    }
    // Closing: every open wait hears so once; jobs not run yet are dropped with their captures.
    std::vector<std::shared_ptr<Wait>> left;
    for (auto& [id, ws] : s->by_id) {
        for (auto& w : ws) {
            if (!w->done) left.push_back(w);
        }
    }
    s->by_id.clear();
    s->timers.clear();
    s->added.clear();
    auto jobs = std::move(s->jobs);
    s->jobs.clear();
    s->open = 0;
    lock.unlock();
    jobs.clear();
    for (auto& w : left) {
        w->done = true;
        run_check(*w, WakeReason::Closing);
    }
}

}  // namespace durable::detail
