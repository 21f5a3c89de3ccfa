// durable/database.hpp — a handle on one durable database file.
//
// Open the file once per process and share the handle between the Host and Clients of that
// process: they then share one writer (group commit) and one completion signal, so a
// client's wait_for_completion wakes the moment the host's commit is durable.
//
// Thread safety: a Database handle may be copied and used from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "durable/event_distributor.hpp"

namespace durable {

struct DatabaseOptions {
    // true: every commit is fsync'd (synchronous=FULL, the default); false: synchronous=NORMAL,
    // which survives a process crash but may lose the last commits on power loss.
    bool fsync_every_commit = true;
    int busy_timeout_ms = 10'000;
    bool read_only = false;  // inspection only (the CLI's read commands)
    // The process's event distributor (see events()): queue size, replay ring capacity and
    // age. Its clock defaults to the system clock.
    EventDistributorOptions events{};
    // How often the change-feed follower looks for commits of other processes (this
    // process's own commits wake it at once).
    std::chrono::milliseconds feed_poll_interval{20};
    // Change-feed retention in the database: rows older than this or beyond this many go.
    std::chrono::milliseconds feed_max_age{std::chrono::hours(1)};
    std::int64_t feed_max_rows = 100'000;
};

// What the process's change-feed follower has done (for metrics).
struct ChangeFeedStats {
    bool running = false;
    std::uint64_t rows_read = 0, rows_lost = 0;
    std::int64_t cursor = 0;  // the last feed row handled
};

// Counters of the database's writer in this process (group commit, checkpoints).
struct DatabaseStats {
    std::int64_t commits = 0;       // write transactions committed
    std::int64_t writes = 0;        // writes they carried
    std::int64_t busy_wait_us = 0;  // time spent waiting for other processes' write locks
    std::int64_t wal_pages = 0;     // pages in the WAL file now
    std::int64_t checkpoints = 0;   // checkpoints that ran to the end
};

namespace detail {
struct DatabaseAccess;
}

class Database {
public:
    // Opens (creating and migrating if needed) the SQLite file at `path`. Throws
    // durable::InvalidInput for an empty path or a directory, and durable::StoreError naming
    // the file and what to do when it cannot be used (locked, read-only, not a database, a
    // database of another program, made by a newer durable). With options.read_only the file
    // is never written; in a directory this process cannot write, it is read as it is.
    static Database open(const std::string& path, const DatabaseOptions& options = {});

    const std::string& path() const;
    // "full" or "normal".
    const char* synchronous() const;
    // This process's writer counters (zero for a read-only handle).
    DatabaseStats stats() const;

    // The process's event distributor, fed by one thread that follows the database's change
    // feed: every instance's history events, committed by any process on the file, in commit
    // order, with the distributor's replay ring and explicit gaps. Started on the first call
    // (a process that never watches runs no follower). Watch it with events()->subscribe().
    std::shared_ptr<EventDistributor> events() const;
    ChangeFeedStats change_feed_stats() const;

private:
    friend struct detail::DatabaseAccess;  // the runtime reaches the store through it
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace durable
