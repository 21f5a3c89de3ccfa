// durable/database.hpp — a handle on one durable database file.
//
// Open the file once per process and share the handle between the Host and Clients of that
// process: they then share one writer (group commit) and one completion signal, so a
// client's wait_for_completion wakes the moment the host's commit is durable.
//
// Thread safety: a Database handle may be copied and used from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace durable {

struct DatabaseOptions {
    // true: every commit is fsync'd (synchronous=FULL, the default); false: synchronous=NORMAL,
    // which survives a process crash but may lose the last commits on power loss.
    bool fsync_every_commit = true;
    int busy_timeout_ms = 10'000;
    bool read_only = false;  // inspection only (the CLI's read commands)
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

private:
    friend struct detail::DatabaseAccess;  // the runtime reaches the store through it
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace durable
