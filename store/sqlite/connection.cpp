// One SQLite connection: open flags, pragmas, busy handler, statement cache.
#include "store/sqlite/connection.hpp"
#include "store/sqlite/wake.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fmt/format.h>
#include <thread>
#include <utility>

#include "durable/errors.hpp"

namespace durable::store::sqlite {
namespace {

std::int64_t now_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

int open_flags(const SqliteOptions& options, bool writer) {
    if (options.read_only) return SQLite::OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
    int flags = SQLite::OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (writer) flags |= SQLite::OPEN_CREATE;
    return flags;
}

// `path` as a file: URI (RFC 3986 percent-encoding of what a URI would misread).
std::string file_uri(const std::string& path) {
    std::string uri = "file:";
    for (unsigned char c : path) {
        if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
            uri += static_cast<char>(c);
        } else {
            uri += fmt::format("%{:02X}", c);
        }
    }
    return uri;
}

// Opens the file. A WAL database opened read-only needs its -shm file; in a directory this
// process cannot write, and with no writer around (no -wal file), SQLite cannot make one and
// refuses even to read. Then the file is opened as immutable: read as it is, without locks,
// which is safe because nobody can be writing it without a -wal file the directory would show.
SQLite::Database open_db(const std::string& path, const SqliteOptions& options, bool writer) {
    SQLite::Database db(path, open_flags(options, writer));
    if (!options.read_only) return db;
    try {
        SQLite::Statement probe(db, "SELECT count(*) FROM sqlite_master");
        probe.executeStep();
        return db;
    } catch (const SQLite::Exception& e) {
        int code = e.getExtendedErrorCode();
        bool no_shm = code == SQLITE_READONLY_DIRECTORY || (code & 0xff) == SQLITE_CANTOPEN;
        std::error_code ec;
        if (!no_shm || std::filesystem::exists(path + "-wal", ec)) throw;
    }
    return SQLite::Database(file_uri(path) + "?immutable=1", SQLite::OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX);
}

}  // namespace

[[noreturn]] void rethrow_as_store_error(const std::string& path, const std::string& doing) {
    try {
        throw;
    } catch (const durable::Error&) {
        throw;
    } catch (const SQLite::Exception& e) {
        int code = e.getErrorCode();
        std::string advice;
        switch (code & 0xff) {
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
                advice = "another process holds the database lock for longer than the busy timeout; "
                         "stop the process holding it or raise the busy timeout";
                break;
            case SQLITE_READONLY:
                advice = "the file or its directory is read-only; fix the permissions, or open it "
                         "read-only for inspection";
                break;
            case SQLITE_NOTADB:
                advice = "the file is not a SQLite database; point --db at a durable database or at "
                         "a new file";
                break;
            case SQLITE_CORRUPT:
                advice = "the database file is corrupt; restore it from a backup";
                break;
            case SQLITE_CANTOPEN:
                advice = "the file cannot be opened; check the path and that its directory exists "
                         "and is writable";
                break;
            case SQLITE_FULL:
                advice = "the disk is full; free space and retry";
                break;
            default:
                advice = "see the SQLite error above";
        }
        throw StoreError(fmt::format("{} '{}' failed: {} (SQLite error {}); {}", doing, path, e.what(),
                                     e.getExtendedErrorCode(), advice));
    } catch (const std::exception& e) {
        throw StoreError(fmt::format("{} '{}' failed: {}", doing, path, e.what()));
    }
}

Connection::Connection(const std::string& path, const SqliteOptions& options, bool writer,
                       std::atomic<std::int64_t>* busy_wait_us)
try : path_(path),
      db_(open_db(path, options, writer)),
      busy_timeout_ms_(options.busy_timeout_ms),
      busy_wait_us_(busy_wait_us),
      rng_state_(static_cast<std::uint64_t>(now_us()) ^ (static_cast<std::uint64_t>(getpid()) << 32) ^
                 reinterpret_cast<std::uintptr_t>(this)) {
    sqlite3_busy_handler(db_.getHandle(), &Connection::busy_handler, this);
    if (!options.read_only && sqlite3_db_readonly(db_.getHandle(), "main") == 1) {
        throw StoreError(fmt::format(
            "cannot open '{}' for writing: the file or its directory is read-only; fix the "
            "permissions, or open it read-only for inspection",
            path));
    }
    // Any query fails here on a file that is not a database.
    exec("PRAGMA foreign_keys = ON");
    exec(options.synchronous == Synchronous::Full ? "PRAGMA synchronous = FULL"
                                                   : "PRAGMA synchronous = NORMAL");
    if (writer) {
        exec(fmt::format("PRAGMA journal_size_limit = {}", options.journal_size_limit).c_str());
        // Checkpoints are the commit thread's job (after commits, past a threshold).
        exec("PRAGMA wal_autocheckpoint = 0");
    } else {
        exec("PRAGMA wal_autocheckpoint = 0");
    }
    exec("PRAGMA cache_size = -16384");
    exec("PRAGMA temp_store = MEMORY");
} catch (...) {
    rethrow_as_store_error(path, "opening");
}

Connection::~Connection() {
    cache_.clear();
}

int Connection::busy_handler(void* p, int count) {
    auto* self = static_cast<Connection*>(p);
    std::int64_t t = now_us();
    if (count == 0) self->busy_started_us_ = t;
    std::int64_t waited = t - self->busy_started_us_;
    if (waited >= static_cast<std::int64_t>(self->busy_timeout_ms_) * 1000) return 0;
    // Short sleeps with full jitter: 50 µs doubling to 2 ms. Waiters wake at different
    // moments, so no process is starved by lock-step retries.
    std::int64_t cap = std::min<std::int64_t>(2000, 50LL << std::min(count, 6));
    self->rng_state_ ^= self->rng_state_ << 13;
    self->rng_state_ ^= self->rng_state_ >> 7;
    self->rng_state_ ^= self->rng_state_ << 17;
    std::int64_t sleep = 20 + static_cast<std::int64_t>(self->rng_state_ % static_cast<std::uint64_t>(cap));
    if (self->wake_board_) {
        // Woken when a writer of any process ends its transaction; the jittered time is the
        // bound (a holder that died, or a release just before this wait began).
        self->wake_board_->wait(WakeBoard::kUnlock, self->wake_board_->load(WakeBoard::kUnlock),
                                std::chrono::microseconds(sleep));
    } else {
        std::this_thread::sleep_for(std::chrono::microseconds(sleep));
    }
    if (self->busy_wait_us_) self->busy_wait_us_->fetch_add(now_us() - t, std::memory_order_relaxed);
    return 1;
}

ScopedStmt Connection::stmt(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        std::string text(sql);
        auto statement = std::make_unique<SQLite::Statement>(db_, text);
        it = cache_.emplace(std::move(text), std::move(statement)).first;
    } else {
        it->second->clearBindings();
    }
    return ScopedStmt(*it->second);
}

void Connection::exec(const char* sql) {
    db_.exec(sql);
}

int Connection::changes() const {
    return sqlite3_changes(db_.getHandle());
}

std::int64_t Connection::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(db_.getHandle());
}

int Connection::set_busy_timeout_ms(int ms) {
    return std::exchange(busy_timeout_ms_, ms);
}

bool Connection::read_only() const {
    return sqlite3_db_readonly(db_.getHandle(), "main") == 1;
}

}  // namespace durable::store::sqlite
