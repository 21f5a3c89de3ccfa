// Database handle and the in-process completion signal.
#include "durable/database.hpp"

#include <mutex>
#include <filesystem>
#include <fmt/format.h>

#include "durable/errors.hpp"
#include "runtime/change_feed.hpp"
#include "runtime/completion_hub.hpp"
#include "store/opener.hpp"
#include "runtime/database_access.hpp"
#include "store/store.hpp"

namespace durable {

namespace detail {

void CompletionHub::notify(const std::string& id) {
    {
        std::lock_guard lock(mu_);
        if (finished_.insert(id).second) {
            order_.push_back(id);
            if (order_.size() > kRemembered) {
                finished_.erase(order_.front());
                order_.pop_front();
            }
        }
        ++progress_;
        // Under the lock: the last waiter erases its Waiters only while holding it.
        if (auto it = waiting_.find(id); it != waiting_.end()) it->second->cv.notify_all();
    }
    progress_cv_.notify_all();
    async_.notify(id);
}

bool CompletionHub::wait(const std::string& id, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (finished_.count(id) > 0) return true;
    auto& slot = waiting_[id];
    if (!slot) slot = std::make_unique<Waiters>();
    Waiters* w = slot.get();
    ++w->count;
    bool done = w->cv.wait_until(lock, deadline, [&] { return finished_.count(id) > 0; });
    if (--w->count == 0) waiting_.erase(id);
    return done;
}

void CompletionHub::forget(const std::string& id) {
    std::lock_guard lock(mu_);
    finished_.erase(id);  // its entry in order_ stays until evicted: erasing a missing id is harmless
}

void CompletionHub::notify_progress() {
    {
        std::lock_guard lock(mu_);
        ++progress_;
    }
    progress_cv_.notify_all();
}

std::uint64_t CompletionHub::progress() const {
    std::lock_guard lock(mu_);
    return progress_;
}

bool CompletionHub::wait_progress(std::uint64_t seen, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return progress_cv_.wait_until(lock, deadline, [&] { return progress_ != seen; });
}

}  // namespace detail

namespace {

// Wall time from the store (the database server's clock for PostgreSQL); monotonic time and
// sleeping from the machine.
class StoreClock final : public Clock {
public:
    explicit StoreClock(std::weak_ptr<store::Store> store) : store_(std::move(store)) {}
    std::int64_t now_ms() const override {
        if (auto s = store_.lock()) return s->now();
        return SystemClock::instance()->now_ms();
    }
    std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::now(); }
    void sleep_for(std::chrono::nanoseconds d) override { SystemClock::instance()->sleep_for(d); }

private:
    std::weak_ptr<store::Store> store_;
};

}  // namespace

struct Database::Impl {
    std::string path;
    DatabaseOptions options;
    std::shared_ptr<store::Store> store;
    std::shared_ptr<Clock> clock;
    std::shared_ptr<detail::CompletionHub> hub = std::make_shared<detail::CompletionHub>();
    std::mutex events_mu;
    std::shared_ptr<EventDistributor> events;                // guarded by events_mu
    std::unique_ptr<detail::ChangeFeedFollower> follower;  // guarded by events_mu

    ~Impl() {
        // The follower first: it publishes into the distributor.
        follower.reset();
        if (events) events->stop();
    }
};

Database Database::open(const std::string& target, const DatabaseOptions& options) {
    if (target.empty()) {
        throw InvalidInput("the database is empty; give the path of a SQLite file or a PostgreSQL URL "
                           "(postgresql://user@host:port/dbname)");
    }
    if (store::store_kind(target) == store::StoreKind::Sqlite) {
        std::error_code ec;
        if (std::filesystem::is_directory(target, ec)) {
            throw InvalidInput(fmt::format("'{}' is a directory; give the path of a database file (e.g. {})", target,
                                           (std::filesystem::path(target) / "durable.db").string()));
        }
    }
    Database db;
    db.impl_ = std::make_shared<Impl>();
    db.impl_->path = target;
    db.impl_->options = options;
    auto kind = store::store_kind(target);
    if (kind == store::StoreKind::Sqlite) {
        store::SqliteOptions so;
        so.synchronous = options.fsync_every_commit ? store::Synchronous::Full : store::Synchronous::Normal;
        so.busy_timeout_ms = options.busy_timeout_ms;
        so.read_only = options.read_only;
        so.change_feed_max_age_ms = options.feed_max_age.count();
        so.change_feed_max_rows = options.feed_max_rows;
        db.impl_->store = store::open_sqlite(target, so);
        db.impl_->clock = SystemClock::instance();
    } else {
        auto opener = store::find_store_opener(kind);
        if (!opener) {
            throw StoreError("this program was built without the PostgreSQL store, so it cannot open a "
                             "postgresql:// database; link it with the durable::postgres library (CMake target "
                             "durable_postgres), or give the path of a SQLite file");
        }
        db.impl_->store = opener(target, options);
        db.impl_->clock = std::make_shared<StoreClock>(db.impl_->store);
    }
    return db;
}

bool Database::names_server(const std::string& target) {
    return store::store_kind(target) != store::StoreKind::Sqlite;
}

Database::Info Database::info() const {
    auto i = impl_->store->info();
    return Info{i.kind, i.version, i.durability};
}

std::string Database::describe() const {
    return impl_->store->describe();
}

std::shared_ptr<Clock> Database::clock() const {
    return impl_->clock;
}

const std::string& Database::path() const {
    return impl_->path;
}

const char* Database::synchronous() const {
    return impl_->options.fsync_every_commit ? "full" : "normal";
}

DatabaseStats Database::stats() const {
    auto st = impl_->store->stats();
    return DatabaseStats{st.commits, st.ops, st.busy_wait_us, st.wal_pages, st.checkpoints};
}

std::shared_ptr<EventDistributor> Database::events() const {
    std::lock_guard lock(impl_->events_mu);
    if (!impl_->events) {
        auto events = std::make_shared<EventDistributor>(impl_->options.events);
        impl_->follower = std::make_unique<detail::ChangeFeedFollower>(impl_->store, impl_->hub, events,
                                                                       impl_->options.feed_poll_interval);
        impl_->events = std::move(events);
    }
    return impl_->events;
}

ChangeFeedStats Database::change_feed_stats() const {
    std::lock_guard lock(impl_->events_mu);
    ChangeFeedStats s;
    if (!impl_->follower) return s;
    s.running = true;
    s.rows_read = impl_->follower->rows_read();
    s.rows_lost = impl_->follower->rows_lost();
    s.cursor = impl_->follower->cursor();
    return s;
}

namespace detail {

std::shared_ptr<store::Store> DatabaseAccess::store(const Database& db) {
    return db.impl_->store;
}

std::shared_ptr<CompletionHub> DatabaseAccess::completions(const Database& db) {
    return db.impl_->hub;
}

}  // namespace detail

}  // namespace durable
