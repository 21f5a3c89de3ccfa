// store/sqlite/connection.hpp — one SQLite connection with its prepared-statement cache.
//
// A Connection is used by one thread at a time (the store's commit thread owns the writer;
// readers come from a pool). Statements are prepared once per connection and reused.
// The busy handler is ours: short sleeps with jitter up to a deadline, time spent waiting
// counted, so contention between host processes is bounded and measured.
#pragma once

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/store.hpp"

namespace durable::store::sqlite {

class WakeBoard;

// A cached statement in use; resets it when it goes out of scope so a half-read SELECT never
// keeps a read snapshot (and the WAL) pinned.
class ScopedStmt {
public:
    explicit ScopedStmt(SQLite::Statement& s) : s_(&s) {}
    ~ScopedStmt() {
        try {
            s_->reset();
        } catch (...) {
        }
    }
    ScopedStmt(const ScopedStmt&) = delete;
    ScopedStmt& operator=(const ScopedStmt&) = delete;
    SQLite::Statement* operator->() { return s_; }
    SQLite::Statement& operator*() { return *s_; }

private:
    SQLite::Statement* s_;
};

class Connection {
public:
    // Opens `path`; `writer` connections create the file if missing. Throws StoreError.
    Connection(const std::string& path, const SqliteOptions& options, bool writer,
               std::atomic<std::int64_t>* busy_wait_us);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // The cached statement for `sql` (keyed by its text: two strings with the same SQL share
    // one statement, and a buffer reused for other SQL never finds the old one), with bindings
    // cleared, ready to bind.
    ScopedStmt stmt(std::string_view sql);
    // How many statements the cache holds.
    std::size_t cached_statements() const { return cache_.size(); }
    void exec(const char* sql);
    int changes() const;
    std::int64_t last_insert_rowid() const;
    SQLite::Database& db() { return db_; }
    const std::string& path() const { return path_; }
    bool read_only() const;
    // How long the busy handler keeps trying before SQLITE_BUSY; returns the previous value.
    int set_busy_timeout_ms(int ms);
    // Where the busy handler waits for the lock's release (instead of sleeping blind); null:
    // it sleeps. The board must outlive the connection or be unset first.
    void set_wake_board(WakeBoard* board) { wake_board_ = board; }

private:
    static int busy_handler(void* self, int count);

    std::string path_;
    SQLite::Database db_;
    int busy_timeout_ms_;
    std::atomic<std::int64_t>* busy_wait_us_;
    std::int64_t busy_started_us_ = 0;
    std::uint64_t rng_state_;
    WakeBoard* wake_board_ = nullptr;
    // Hashes the text; a lookup with a string_view makes no copy (C++20 heterogeneous lookup).
    struct TextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>, TextHash, std::equal_to<>> cache_;
};

// Turns a SQLite failure into a StoreError that names the file and says what to do.
[[noreturn]] void rethrow_as_store_error(const std::string& path, const std::string& doing);

}  // namespace durable::store::sqlite
