// The SQLite store: one writer connection owned by one commit thread (group commit), pooled
// reader connections, migrations at open, and the checkpoint policy.
//
// Group commit: writes queue up; the commit thread takes everything queued (up to
// max_batch_ops), runs it in ONE `BEGIN IMMEDIATE` transaction (should a write fail, the
// batch runs again with a savepoint per write, so one failing write never takes the others
// down), commits, and only then runs the callbacks: itself when nothing else waits, else
// through the callback thread, in commit order either way. A caller is never told a write
// happened before it is durable.
//
// Leader commits: a write from a thread inside a LeaderCommits scope that finds the store
// idle (no commit running, nothing queued, no callbacks pending) is committed by that
// thread, which then runs its callback: no commit-thread wake-up and no wake-up of a caller
// that waits for the callback, two thread hand-offs fewer on the latency path. Only one thread commits at a time (the
// `committing_` role, taken by the commit thread or a leader), and a committer gives the
// role up only after its callbacks ran, so callbacks keep commit order. A leader runs its own
// callback only: writes queued meanwhile go to the commit thread. A writer that arrives while
// a leader runs its callback (typically the thread that callback wakes) waits for it and
// leads next, instead of queueing for the commit thread.
//
// Checkpoints: automatic checkpointing is off on every connection; the commit thread runs
// `wal_checkpoint(PASSIVE)` when the WAL passes `checkpoint_pages`, and `TRUNCATE` when idle.
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <spdlog/spdlog.h>
#include <string_view>
#include <thread>

#include "durable/errors.hpp"
#include "store/migrations.hpp"
#include "store/sqlite/sql.hpp"
#include "store/sqlite/wake.hpp"
#include "store/named_thread.hpp"

namespace durable::store {
namespace sqlite {
namespace {

struct Write {
    std::function<void(Connection&, WriteResult&)> apply;
    WriteCallback done;
    WriteResult result;
    unsigned work = 0;  // WorkKind bits other processes are told of once it is durable
};

int wal_hook(void* self, sqlite3*, const char*, int pages);

class SqliteStore final : public Store {
public:
    SqliteStore(std::string path, SqliteOptions options) : path_(std::move(path)), options_(options) {
        writer_ = std::make_unique<Connection>(path_, options_, !options_.read_only, &busy_wait_us_);
        migrate();
        {
            SQLite::Statement ps(writer_->db(), "PRAGMA page_size");
            if (ps.executeStep()) page_size_ = ps.getColumn(0).getInt64();
        }
        if (!options_.read_only) {
            // Cross-process wake-ups (wake.hpp); without the file, hosts poll as before.
            board_ = WakeBoard::open(path_);
            if (board_) {
                signals_ = std::make_unique<WorkSignals>(board_.get());
                writer_->set_wake_board(board_.get());
            }
            sqlite3_wal_hook(writer_->db().getHandle(), &wal_hook, this);
            thread_ = durable::detail::named_thread("durable-commit", [this] { commit_loop(); });
            done_thread_ = durable::detail::named_thread("durable-done", [this] { done_loop(); });
        }
    }

    ~SqliteStore() override {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
        {
            std::lock_guard lock(done_mu_);
            done_stopping_ = true;
        }
        done_cv_.notify_all();
        if (done_thread_.joinable()) done_thread_.join();
        if (writer_ && !options_.read_only) checkpoint("TRUNCATE");
        signals_.reset();
        if (writer_) writer_->set_wake_board(nullptr);
    }

    void set_wal_pages(int pages) { wal_pages_ = pages; }

    // ---- writes ----
    void create_instance(NewInstance inst, WriteCallback cb) override {
        // Leased at creation: its host runs it; nobody else needs to look.
        unsigned work = inst.lease_owner ? 0u : kWorkInstances | kWorkInbox;
        enqueue([inst = std::move(inst)](Connection& c, WriteResult& r) { sql::create_instance(c, inst, r); },
                std::move(cb), work);
    }
    void send_message(NewMessage msg, std::optional<AuditEntry> audit, WriteCallback cb) override {
        enqueue([msg = std::move(msg), audit = std::move(audit)](Connection& c, WriteResult& r) {
            sql::send_message(c, msg, audit, r);
        }, std::move(cb), kWorkInbox | kWorkInstances);
    }
    void commit_episode(EpisodeCommit commit, WriteCallback cb) override {
        unsigned work = 0;
        if (!commit.tasks.empty()) work |= kWorkTasks;
        if (!commit.messages.empty() || !commit.new_instances.empty()) work |= kWorkInbox | kWorkInstances;
        if (commit.release_lease && !is_terminal(commit.status)) work |= kWorkInstances;
        enqueue([e = std::move(commit)](Connection& c, WriteResult& r) { sql::commit_episode(c, e, r); },
                std::move(cb), work);
    }
    void claim_instances(std::vector<Candidate> cands, std::string owner, Millis now, Millis lease_until,
                         WriteCallback cb) override {
        enqueue([cands = std::move(cands), owner = std::move(owner), now, lease_until](Connection& c, WriteResult& r) {
            sql::claim_instances(c, cands, owner, now, lease_until, r);
        }, std::move(cb));
    }
    void renew_leases(std::string owner, Millis now, Millis lease_until, WriteCallback cb) override {
        enqueue([this, owner = std::move(owner), now, lease_until](Connection& c, WriteResult& r) {
            Millis task_now = this->now();  // task leases: the store's clock (claim_tasks)
            sql::renew_leases(c, owner, now, lease_until, task_now, task_now + (lease_until - now), r);
        }, std::move(cb));
    }
    void release_leases(std::string owner, std::vector<std::string> ids, bool orphan, WriteCallback cb) override {
        enqueue([owner = std::move(owner), ids = std::move(ids), orphan](Connection& c, WriteResult& r) {
            sql::release_leases(c, owner, ids, orphan, r);
        }, std::move(cb), kWorkInstances);
    }
    void heartbeat(HostRow host, WriteCallback cb) override {
        enqueue([host = std::move(host)](Connection& c, WriteResult& r) {
            sql::heartbeat(c, host);
            r.ok = true;
        }, std::move(cb));
    }
    void claim_tasks(std::vector<std::string> names, std::string owner, Millis lease_ms, int limit,
                     std::function<void(std::vector<ClaimedTask>, std::exception_ptr)> cb) override {
        auto out = std::make_shared<std::vector<ClaimedTask>>();
        enqueue([this, names = std::move(names), owner = std::move(owner), lease_ms, limit, out](Connection& c,
                                                                                               WriteResult& r) {
            Millis now = this->now();  // the store's clock, read when the claim runs
            *out = sql::claim_tasks(c, names, owner, now, now + lease_ms, limit);
            r.ok = true;
        }, [out, cb = std::move(cb)](const WriteResult& r) { cb(r.error ? std::vector<ClaimedTask>{} : std::move(*out), r.error); });
    }
    void complete_task(std::int64_t row_id, std::string owner, NewMessage completion, WriteCallback cb) override {
        enqueue([row_id, owner = std::move(owner), completion = std::move(completion)](Connection& c, WriteResult& r) {
            sql::complete_task(c, row_id, owner, completion, r);
        }, std::move(cb), kWorkInbox | kWorkInstances);
    }
    void complete_and_claim_tasks(std::string owner, std::vector<TaskCompletion> done, std::vector<std::string> names,
                                  Millis lease_ms, int limit,
                                  std::function<void(const WriteResult&, std::vector<ClaimedTask>)> cb) override {
        auto out = std::make_shared<std::vector<ClaimedTask>>();
        unsigned work = done.empty() ? 0u : kWorkInbox | kWorkInstances;
        enqueue([this, owner = std::move(owner), done = std::move(done), names = std::move(names), lease_ms, limit,
                 out](Connection& c, WriteResult& r) {
            out->clear();
            r.rows.clear();
            for (const auto& d : done) {
                WriteResult one;
                sql::complete_task(c, d.row_id, owner, d.completion, one);
                if (one.ok) r.rows.push_back(d.row_id);
            }
            if (limit > 0 && !names.empty()) {
                Millis now = this->now();  // the store's clock, read when the claim runs
                *out = sql::claim_tasks(c, names, owner, now, now + lease_ms, limit);
            }
            r.ok = true;
        }, [out, cb = std::move(cb)](const WriteResult& r) {
            if (r.error) {
                WriteResult failed = r;  // the transaction did not happen: nothing delivered, nothing claimed
                failed.rows.clear();
                cb(failed, {});
            } else {
                cb(r, std::move(*out));
            }
        }, work);
    }
    void release_tasks(std::string owner, std::vector<std::int64_t> rows, WriteCallback cb) override {
        enqueue([owner = std::move(owner), rows = std::move(rows)](Connection& c, WriteResult& r) {
            sql::release_tasks(c, owner, rows, r);
        }, std::move(cb), kWorkTasks);
    }
    void heartbeat_task(std::int64_t row_id, std::string owner, Millis lease_ms, std::optional<std::string> details,
                        WriteCallback cb) override {
        enqueue([this, row_id, owner = std::move(owner), lease_ms, details = std::move(details)](Connection& c,
                                                                                                WriteResult& r) {
            sql::heartbeat_task(c, row_id, owner, this->now() + lease_ms, details, r);
        }, std::move(cb));
    }
    void purge_instance(std::string id, WriteCallback cb) override {
        enqueue([id = std::move(id)](Connection& c, WriteResult& r) { sql::purge_instance(c, id, r); }, std::move(cb));
    }
    void purge_instances(PurgeFilter filter, Millis now, WriteCallback cb) override {
        (void)now;
        enqueue([filter = std::move(filter)](Connection& c, WriteResult& r) { sql::purge_instances(c, filter, r); },
                std::move(cb));
    }
    void rewind_instances(std::vector<Rewind> rewinds, WriteCallback cb) override {
        enqueue([rewinds = std::move(rewinds)](Connection& c, WriteResult& r) { sql::rewind_instances(c, rewinds, r); },
                std::move(cb), kWorkInbox | kWorkInstances);
    }
    void append_audit(AuditEntry entry, WriteCallback cb) override {
        enqueue([entry = std::move(entry)](Connection& c, WriteResult& r) {
            sql::append_audit(c, entry);
            r.ok = true;
        }, std::move(cb));
    }

    void create_schedule(ScheduleRow row, std::optional<AuditEntry> audit, WriteCallback cb) override {
        enqueue([row = std::move(row), audit = std::move(audit)](Connection& c, WriteResult& r) {
            sql::create_schedule(c, row, audit, r);
        }, std::move(cb));
    }
    void update_schedule(ScheduleUpdate update, WriteCallback cb) override {
        enqueue([u = std::move(update)](Connection& c, WriteResult& r) { sql::update_schedule(c, u, r); },
                std::move(cb), kWorkInstances | kWorkInbox);
    }
    void delete_schedule(std::string id, std::optional<AuditEntry> audit, WriteCallback cb) override {
        enqueue([id = std::move(id), audit = std::move(audit)](Connection& c, WriteResult& r) {
            sql::delete_schedule(c, id, audit, r);
        }, std::move(cb));
    }

    void flush() override {
        std::promise<void> done;
        auto f = done.get_future();
        enqueue([](Connection&, WriteResult& r) { r.ok = true; }, [&done](const WriteResult&) { done.set_value(); });
        f.wait();
    }

    std::optional<std::uint64_t> subscribe_work(unsigned kinds, std::function<void()> on_work) override {
        if (!signals_) return std::nullopt;
        return signals_->subscribe(kinds, std::move(on_work));
    }
    void unsubscribe_work(std::uint64_t id) override {
        if (signals_) signals_->unsubscribe(id);
    }

    // ---- reads ----
    std::optional<InstanceRow> get_instance(const std::string& id) override {
        return read([&](Connection& c) { return sql::get_instance(c, id); });
    }
    std::vector<HistoryRow> get_history(const std::string& id, std::int64_t from_seq, int limit) override {
        return read([&](Connection& c) { return sql::get_history(c, id, from_seq, limit); });
    }
    std::vector<InboxRow> get_inbox(const std::string& id, Millis now) override {
        return read([&](Connection& c) { return sql::get_inbox(c, id, now); });
    }
    std::vector<InstanceRow> query_instances(const InstanceFilter& f) override {
        return read([&](Connection& c) { return sql::query_instances(c, f); });
    }
    std::vector<std::pair<Status, std::int64_t>> count_by_status() override {
        return read([&](Connection& c) { return sql::count_by_status(c); });
    }
    std::vector<Candidate> find_claimable(const std::string& owner, const std::vector<OrchestrationCode>& names, Millis now,
                                          int limit) override {
        return read([&](Connection& c) { return sql::find_claimable(c, owner, names, now, limit); });
    }
    std::vector<std::string> claimable_task_names(const std::vector<std::string>& names) override {
        Millis now = this->now();  // task leases: the store's clock (claim_tasks)
        return read([&](Connection& c) { return sql::claimable_task_names(c, names, now); });
    }
    std::vector<InboxRow> owned_inbox(const std::string& owner, Millis now, int limit) override {
        return read([&](Connection& c) { return sql::owned_inbox(c, owner, now, limit); });
    }
    std::vector<InboxRow> owned_inbox_since(const std::string& owner, Millis now, int limit,
                                            InboxCursor& cursor) override {
        return read([&](Connection& c) { return sql::owned_inbox_since(c, owner, now, limit, cursor); });
    }
    std::optional<Millis> next_visible_after(Millis now) override {
        return read([&](Connection& c) { return sql::next_visible_after(c, now); });
    }
    std::vector<HostRow> list_hosts() override {
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        return read([&](Connection& c) { return sql::list_hosts(c, now); });
    }
    std::vector<InstanceRow> list_leases(Millis now) override {
        return read([&](Connection& c) { return sql::list_leases(c, now); });
    }
    std::vector<AuditEntry> audit_log(const std::optional<std::string>& instance_id, int limit) override {
        return read([&](Connection& c) { return sql::audit_log(c, instance_id, limit); });
    }
    std::optional<ScheduleRow> get_schedule(const std::string& id) override {
        return read([&](Connection& c) { return sql::get_schedule(c, id); });
    }
    std::vector<ScheduleRow> list_schedules() override {
        return read([&](Connection& c) { return sql::list_schedules(c); });
    }
    std::vector<ScheduleRow> due_schedules(Millis now, int limit) override {
        return read([&](Connection& c) { return sql::due_schedules(c, now, limit); });
    }
    std::optional<Millis> next_schedule_fire() override {
        return read([&](Connection& c) { return sql::next_schedule_fire(c); });
    }
    std::int64_t change_counter() override {
        std::lock_guard lock(version_mu_);
        try {
            if (!version_conn_) version_conn_ = std::make_unique<Connection>(path_, reader_options(), false, &busy_wait_us_);
            auto s = version_conn_->stmt("PRAGMA data_version");
            s->executeStep();
            return s->getColumn(0).getInt64();
        } catch (...) {
            rethrow_as_store_error(path_, "reading the change counter of");
        }
    }
    std::vector<ChangeRow> read_changes(std::int64_t after_seq, int limit) override {
        return read([&](Connection& c) { return sql::read_changes(c, after_seq, limit); });
    }
    std::int64_t change_feed_head() override {
        return read([&](Connection& c) { return sql::change_feed_head(c); });
    }
    void probe() override {
        try {
            // Read-only and without SQLITE_OPEN_CREATE: a file that is gone is an error, not a
            // new empty database.
            SQLite::Database db(path_, SQLite::OPEN_READONLY);
            db.exec("PRAGMA busy_timeout = 1000");
            SQLite::Statement s(db, "SELECT COUNT(*) FROM schema_migrations");
            s.executeStep();
        } catch (...) {
            rethrow_as_store_error(path_, "probing");
        }
    }
    StoreStats stats() override {
        StoreStats s;
        s.commits = commits_.load();
        s.ops = ops_.load();
        s.busy_wait_us = busy_wait_us_.load();
        s.wal_pages = wal_pages_.load();
        s.checkpoints = checkpoints_.load();
        s.checkpoint_us = checkpoint_us_.load();
        s.wal_bytes = s.wal_pages * page_size_.load();
        return s;
    }
    std::string describe() const override {
        return fmt::format("sqlite:{} (synchronous={})", path_,
                           options_.synchronous == Synchronous::Full ? "full" : "normal");
    }

    StoreInfo info() const override {
        return StoreInfo{"sqlite", sqlite3_libversion(),
                         options_.synchronous == Synchronous::Full ? "synchronous=full" : "synchronous=normal"};
    }

private:
    SqliteOptions reader_options() const {
        SqliteOptions o = options_;
        return o;
    }

    template <class F>
    auto read(F&& f) -> decltype(f(std::declval<Connection&>())) {
        std::unique_ptr<Connection> conn;
        {
            std::lock_guard lock(pool_mu_);
            if (!readers_.empty()) {
                conn = std::move(readers_.back());
                readers_.pop_back();
            }
        }
        try {
            if (!conn) conn = std::make_unique<Connection>(path_, reader_options(), false, &busy_wait_us_);
            auto result = f(*conn);
            std::lock_guard lock(pool_mu_);
            readers_.push_back(std::move(conn));
            return result;
        } catch (...) {
            rethrow_as_store_error(path_, "reading");
        }
    }

    void enqueue(std::function<void(Connection&, WriteResult&)> apply, WriteCallback cb, unsigned work = 0) {
        if (options_.read_only) {
            WriteResult r;
            r.error = std::make_exception_ptr(StoreError(
                fmt::format("'{}' is open read-only; writes need a writable database", path_)));
            if (cb) cb(r);
            return;
        }
        {
            std::unique_lock lock(mu_);
            if (!LeaderCommits::active() || committing_ || !queue_.empty() || stopping_ || !callbacks_idle()) {
                queue_.push_back(Write{std::move(apply), std::move(cb), {}, work});
                lock.unlock();
                cv_.notify_one();
                return;
            }
            committing_ = true;
        }
        std::vector<Write> batch;
        batch.push_back(Write{std::move(apply), std::move(cb), {}, work});
        run_batch(batch);
        if (wal_pages_.load() > options_.checkpoint_pages) checkpoint("PASSIVE");
        run_callbacks(batch);
        {
            std::lock_guard lock(mu_);
            committing_ = false;
            wal_dirty_ = true;
            last_commit_ = std::chrono::steady_clock::now();
        }
        // Writes queued while this thread committed, and the idle checkpoint, are the commit
        // thread's.
        cv_.notify_one();
    }

    // No committed batch has callbacks still to run (a leader's callback must not overtake them).
    bool callbacks_idle() {
        std::lock_guard lock(done_mu_);
        return done_queue_.empty() && !done_running_;
    }

    void commit_loop() {
        using steady = std::chrono::steady_clock;
        std::vector<Write> batch;
        for (;;) {
            {
                std::unique_lock lock(mu_);
                auto ready = [&] { return stopping_ || (!queue_.empty() && !committing_); };
                // Idle (200 ms without a commit, this thread's or a leader's): give the WAL back.
                while (wal_dirty_ && !ready()) {
                    auto idle_at = last_commit_ + std::chrono::milliseconds(200);
                    if (cv_.wait_until(lock, idle_at, ready)) break;
                    if (committing_ || steady::now() < last_commit_ + std::chrono::milliseconds(200)) continue;
                    committing_ = true;
                    wal_dirty_ = false;
                    lock.unlock();
                    checkpoint("TRUNCATE");
                    lock.lock();
                    committing_ = false;
                }
                cv_.wait(lock, ready);
                if (stopping_) {
                    cv_.wait(lock, [&] { return !committing_; });  // a leader finishing its write
                    if (queue_.empty()) return;
                }
                committing_ = true;
                std::size_t n = std::min<std::size_t>(queue_.size(), static_cast<std::size_t>(options_.max_batch_ops));
                for (std::size_t i = 0; i < n; ++i) {
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            run_batch(batch);
            // Nothing else to commit and no callbacks pending: tell the waiters from here (one
            // thread wake-up fewer on the latency path). Otherwise the callback thread does,
            // while this thread goes on with the next batch.
            bool here = false;
            {
                std::lock_guard queue_lock(mu_);  // mu_ before done_mu_, as enqueue() takes them
                std::lock_guard lock(done_mu_);
                here = done_queue_.empty() && !done_running_ && queue_.empty();
                if (!here) done_queue_.push_back(std::move(batch));
            }
            if (here) {
                run_callbacks(batch);
            } else {
                done_cv_.notify_one();
            }
            batch = {};
            if (wal_pages_.load() > options_.checkpoint_pages) checkpoint("PASSIVE");
            {
                std::lock_guard lock(mu_);
                committing_ = false;
                wal_dirty_ = true;
                last_commit_ = steady::now();
            }
        }
    }

    // Runs the callbacks of committed batches, in commit order, while the commit thread
    // already works on the next batch (waking the waiters is a good part of a commit's cost).
    void done_loop() {
        for (;;) {
            std::vector<Write> batch;
            {
                std::unique_lock lock(done_mu_);
                done_running_ = false;
                done_cv_.wait(lock, [&] { return done_stopping_ || !done_queue_.empty(); });
                if (done_queue_.empty()) return;  // stopping, and everything is told
                batch = std::move(done_queue_.front());
                done_queue_.pop_front();
                done_running_ = true;
            }
            run_callbacks(batch);
        }
    }

    static void run_callbacks(std::vector<Write>& batch) {
        for (auto& w : batch) {
            if (!w.done) continue;
            try {
                w.done(w.result);
            } catch (const std::exception& e) {
                spdlog::error("store: a write callback threw: {}", e.what());
            }
        }
    }

    enum class Applied { All, WriteThrew, Failed };

    // Begins a transaction and applies the batch. Without `isolate`, a throwing write rolls the
    // transaction back (WriteThrew); with it, the write gets its error and the rest go on. When
    // the transaction itself fails, every write gets the error (fail_all: Failed).
    Applied apply_batch(Connection& c, std::vector<Write>& batch, bool isolate) {
        try {
            c.stmt("BEGIN IMMEDIATE")->exec();
        } catch (...) {
            fail_all(batch, "starting a write transaction on");
            return Applied::Failed;
        }
        for (auto& w : batch) {
            try {
                if (!isolate) {
                    bool threw = false;
                    try {
                        w.apply(c, w.result);
                    } catch (...) {
                        threw = true;
                    }
                    if (threw) {
                        c.exec("ROLLBACK");  // a throw here fails the batch (below)
                        return Applied::WriteThrew;
                    }
                    continue;
                }
                c.stmt("SAVEPOINT w")->exec();
                try {
                    w.apply(c, w.result);
                    c.stmt("RELEASE w")->exec();
                } catch (...) {
                    w.result = WriteResult{};
                    w.result.error = std::current_exception();
                    c.stmt("ROLLBACK TO w")->exec();
                    c.stmt("RELEASE w")->exec();
                }
            } catch (...) {
                try {
                    c.exec("ROLLBACK");
                } catch (...) {
                }
                fail_all(batch, "writing to");
                return Applied::Failed;
            }
        }
        return Applied::All;
    }

    // One transaction for the whole batch. Writes run back to back with no savepoint each
    // (a savepoint per write costs as much SQLite work as a small write); should one of them
    // throw, the transaction is rolled back and the batch run again with a savepoint around
    // every write, so the failing write fails alone and the others commit. Writes are pure
    // functions of the database, so running them again gives the same results.
    void run_batch(std::vector<Write>& batch) {
        run_batch_locked(batch);
        // The write lock is free: a process waiting for it in its busy handler goes on now.
        if (board_ && board_->has_waiters(WakeBoard::kUnlock)) board_->bump(WakeBoard::kUnlock);
    }

    void run_batch_locked(std::vector<Write>& batch) {
        Connection& c = *writer_;
        switch (apply_batch(c, batch, false)) {
            case Applied::All: break;
            case Applied::Failed: return;
            case Applied::WriteThrew:
                for (auto& w : batch) w.result = WriteResult{};
                if (apply_batch(c, batch, true) == Applied::Failed) return;
                break;
        }
        prune_change_feed_if_due(c);
        try {
            c.stmt("COMMIT")->exec();
        } catch (...) {
            try {
                c.exec("ROLLBACK");
            } catch (...) {
            }
            fail_all(batch, "committing to");
            return;
        }
        commits_.fetch_add(1, std::memory_order_relaxed);
        ops_.fetch_add(static_cast<std::int64_t>(batch.size()), std::memory_order_relaxed);
        if (signals_) {
            unsigned work = 0;
            for (const auto& w : batch) {
                if (!w.result.error && !w.result.conflict) work |= w.work;
            }
            signals_->committed(work);  // before the callbacks: the other side starts at once
        }
        for (auto& w : batch) {
            if (w.result.error) {
                try {
                    std::rethrow_exception(w.result.error);
                } catch (const durable::Error&) {
                } catch (...) {
                    try {
                        rethrow_as_store_error(path_, "writing to");
                    } catch (...) {
                        w.result.error = std::current_exception();
                    }
                }
            }
        }
    }

    // About once a second, the batch's transaction also trims the change feed. A failure
    // here is not the batch's: it is logged and tried again next time.
    void prune_change_feed_if_due(Connection& c) {
        auto now = std::chrono::steady_clock::now();
        if (now < next_prune_) return;
        next_prune_ = now + std::chrono::seconds(1);
        auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
        try {
            c.stmt("SAVEPOINT prune")->exec();
            try {
                sql::prune_change_feed(c, wall - options_.change_feed_max_age_ms, options_.change_feed_max_rows);
                c.stmt("RELEASE prune")->exec();
            } catch (...) {
                c.stmt("ROLLBACK TO prune")->exec();
                c.stmt("RELEASE prune")->exec();
                throw;
            }
        } catch (const std::exception& e) {
            spdlog::warn("store: pruning the change feed of {} failed: {}", path_, e.what());
        }
    }

    void fail_all(std::vector<Write>& batch, const char* doing) {
        std::exception_ptr err;
        try {
            rethrow_as_store_error(path_, doing);
        } catch (...) {
            err = std::current_exception();
        }
        try {
            std::rethrow_exception(err);
        } catch (const std::exception& e) {
            spdlog::error("store: {}", e.what());
        }
        for (auto& w : batch) {
            w.result = WriteResult{};
            w.result.error = err;
        }
    }

    // PASSIVE never waits. TRUNCATE waits for readers while holding the write lock, so it
    // gets a short busy timeout: a reader in another process that does not finish (a process
    // stopped with SIGSTOP in a read, say) must not stall this host's writes, or every host's
    // claims, for the whole busy timeout. A TRUNCATE that cannot finish is tried again the
    // next time the store is idle; the WAL is still bounded by the PASSIVE ones.
    void checkpoint(const char* mode) {
        bool truncate = std::string_view(mode) == "TRUNCATE";
        auto started = std::chrono::steady_clock::now();
        int previous = writer_->set_busy_timeout_ms(truncate ? kTruncateBusyMs : options_.busy_timeout_ms);
        try {
            std::string sql = fmt::format("PRAGMA wal_checkpoint({})", mode);
            SQLite::Statement s(writer_->db(), sql);
            bool done = s.executeStep() && s.getColumn(0).getInt() == 0;  // busy = 0: it ran to the end
            if (done) {
                checkpoints_.fetch_add(1, std::memory_order_relaxed);
                wal_pages_ = 0;
            }
        } catch (const std::exception& e) {
            spdlog::debug("store: checkpoint {} of {} skipped: {}", mode, path_, e.what());
        }
        writer_->set_busy_timeout_ms(previous);
        checkpoint_us_.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - started).count(),
                                 std::memory_order_relaxed);
    }
    static constexpr int kTruncateBusyMs = 20;

    void migrate();
    void migrate_once();  // throws SQLite::Exception as SQLite gave it
    // True when the file holds durable's schema, false when it holds nothing yet; throws
    // StoreError for a database that holds other tables.
    bool holds_durable_schema(Connection& c);

    std::string path_;
    SqliteOptions options_;
    std::unique_ptr<WakeBoard> board_;      // cross-process wake-ups; null when unavailable
    std::unique_ptr<WorkSignals> signals_;  // over board_; reset before it
    std::unique_ptr<Connection> writer_;  // used only by the commit thread after construction

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Write> queue_;  // guarded by mu_
    bool stopping_ = false;    // guarded by mu_
    // A thread (the commit thread or a leader) holds the writer connection; guarded by mu_.
    bool committing_ = false;
    // A writer that finds a leader committing queues its write for the commit thread: it never
    // waits for the leader (it may hold a lock the leader's callbacks take).
    bool wal_dirty_ = false;   // committed to since the last idle checkpoint; guarded by mu_
    std::chrono::steady_clock::time_point last_commit_{};  // guarded by mu_
    std::thread thread_;

    std::mutex done_mu_;
    std::condition_variable done_cv_;
    std::deque<std::vector<Write>> done_queue_;  // committed batches whose callbacks are due; guarded by done_mu_
    bool done_stopping_ = false;                 // guarded by done_mu_
    bool done_running_ = false;                  // the callback thread is running a batch's callbacks; guarded by done_mu_
    std::thread done_thread_;

    std::mutex pool_mu_;
    std::vector<std::unique_ptr<Connection>> readers_;  // guarded by pool_mu_

    std::mutex version_mu_;
    std::unique_ptr<Connection> version_conn_;  // guarded by version_mu_

    std::atomic<std::int64_t> busy_wait_us_{0}, commits_{0}, ops_{0}, wal_pages_{0}, checkpoints_{0}, checkpoint_us_{0};
    std::atomic<std::int64_t> page_size_{4096};
    std::chrono::steady_clock::time_point next_prune_{};  // used by the commit thread only
};

int wal_hook(void* self, sqlite3*, const char*, int pages) {
    static_cast<SqliteStore*>(self)->set_wal_pages(pages);
    return SQLITE_OK;
}

void SqliteStore::migrate() {
    // Processes opening a new file at the same moment: some steps (switching the journal to
    // WAL, the first write transactions) can answer SQLITE_BUSY without waiting in the busy
    // handler. Every step is safe to run again (each migration checks whether it is applied),
    // so a busy answer means: wait a little, then again, until the busy timeout.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.busy_timeout_ms);
    std::uint64_t jitter = static_cast<std::uint64_t>(getpid()) * 2654435761u;
    for (int attempt = 0;; ++attempt) {
        try {
            migrate_once();
            return;
        } catch (const SQLite::Exception& e) {
            bool busy = (e.getErrorCode() & 0xff) == SQLITE_BUSY || (e.getErrorCode() & 0xff) == SQLITE_LOCKED;
            if (!busy || std::chrono::steady_clock::now() >= deadline) {
                try {
                    throw;
                } catch (...) {
                    rethrow_as_store_error(path_, "opening and migrating");
                }
            }
            jitter = jitter * 6364136223846793005ULL + 1442695040888963407ULL;
            std::this_thread::sleep_for(std::chrono::milliseconds(1 + static_cast<int>((jitter >> 33) % (5u << std::min(attempt, 4)))));
        } catch (const durable::Error&) {
            throw;
        } catch (...) {
            rethrow_as_store_error(path_, "opening and migrating");
        }
    }
}

bool SqliteStore::holds_durable_schema(Connection& c) {
    std::vector<std::string> objects;
    bool durable = false;
    SQLite::Statement s(c.db(),
                        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
    while (s.executeStep()) {
        std::string name = s.getColumn(0).getString();
        if (name == "schema_migrations") durable = true;
        objects.push_back(std::move(name));
    }
    if (durable || objects.empty()) return durable;
    std::string some;
    for (std::size_t i = 0; i < objects.size() && i < 5; ++i) some += (i ? ", " : "") + objects[i];
    if (objects.size() > 5) some += ", ...";
    throw StoreError(fmt::format("'{}' is a SQLite database of another program (it holds {}, and no durable schema); "
                                 "durable leaves it as it is: point --db at a new file or at a durable database",
                                 path_, some));
}

void SqliteStore::migrate_once() {
    Connection& c = *writer_;
    const auto& migrations = embedded_migrations();
    int known = migrations.empty() ? 0 : migrations.back().version;
    {
        // Before anything is written (even the switch to WAL): a database of another program
        // is left exactly as it is.
        if (!holds_durable_schema(c) && options_.read_only) {
            throw StoreError(fmt::format("'{}' holds no durable database yet and is open read-only; start a worker "
                                         "or schedule an instance on it first",
                                         path_));
        }
        if (!options_.read_only) {
            c.exec("PRAGMA journal_mode = WAL");
            c.exec("BEGIN IMMEDIATE");
            c.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "applied_at INTEGER NOT NULL)");
            c.exec("COMMIT");
        }
        int current = 0;
        {
            SQLite::Statement s(c.db(), "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
            if (s.executeStep()) current = s.getColumn(0).getInt();
        }
        if (current > known) {
            throw StoreError(fmt::format(
                "'{}' has schema version {}, but this build of durable knows versions up to {}; "
                "upgrade durable to open it",
                path_, current, known));
        }
        if (options_.read_only) {
            if (current < known) {
                throw StoreError(fmt::format(
                    "'{}' has schema version {} (this build needs {}) and is open read-only; open it "
                    "writable once to migrate it",
                    path_, current, known));
            }
            return;
        }
        for (const auto& m : migrations) {
            if (m.version <= current) continue;
            // Each migration is its own transaction; the check inside it makes concurrent
            // openers apply each exactly once.
            c.exec("BEGIN IMMEDIATE");
            try {
                SQLite::Statement check(c.db(), "SELECT 1 FROM schema_migrations WHERE version = ?");
                check.bind(1, m.version);
                bool applied = check.executeStep();
                check.reset();
                if (!applied) {
                    c.exec(m.sql);
                    SQLite::Statement rec(c.db(),
                                          "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
                    rec.bind(1, m.version);
                    rec.bind(2, m.name);
                    rec.bind(3, static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                              std::chrono::system_clock::now().time_since_epoch())
                                                              .count()));
                    rec.exec();
                    spdlog::info("store: applied migration {} to {}", m.name, path_);
                }
                c.exec("COMMIT");
            } catch (...) {
                try {
                    c.exec("ROLLBACK");
                } catch (...) {
                }
                throw;
            }
        }
    }
}

}  // namespace
}  // namespace sqlite

std::shared_ptr<Store> open_sqlite(const std::string& path, const SqliteOptions& options) {
    return std::make_shared<sqlite::SqliteStore>(path, options);
}

}  // namespace durable::store
