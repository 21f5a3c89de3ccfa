// durable/database.hpp — a handle on one durable database file.
//
// Open the file once per process and share the handle between the Host and Clients of that
// process: they then share one writer (group commit) and one completion signal, so a
// client's wait_for_completion wakes the moment the host's commit is durable.
//
// Thread safety: a Database handle may be copied and used from any thread.
#pragma once

#include <memory>
#include <string>

namespace durable {

namespace store {
class Store;
}

struct DatabaseOptions {
    // true: every commit is fsync'd (synchronous=FULL, the default); false: synchronous=NORMAL,
    // which survives a process crash but may lose the last commits on power loss.
    bool fsync_every_commit = true;
    int busy_timeout_ms = 10'000;
    bool read_only = false;  // inspection only (the CLI's read commands)
};

namespace detail {
class CompletionHub;
}

class Database {
public:
    // Opens (creating and migrating if needed) the SQLite file at `path`. Throws
    // durable::StoreError naming the file and what to do when it cannot be used (locked,
    // read-only, not a database, made by a newer durable).
    static Database open(const std::string& path, const DatabaseOptions& options = {});

    const std::string& path() const;
    // "full" or "normal".
    const char* synchronous() const;

    // Internals shared by Host and Client.
    std::shared_ptr<store::Store> store() const;
    std::shared_ptr<detail::CompletionHub> completions() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace durable
