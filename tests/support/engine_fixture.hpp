// A database with a host and a client on it, for engine tests: a SQLite file in a temp dir
// (Engine), or a fresh database of either store (EngineOn<Kind>, for TEST_CASE_TEMPLATE over
// DURABLE_TEST_STORES).
#pragma once

#include <durable/durable.hpp>

#include <memory>

#include "support/store_kinds.hpp"
#include "support/temp_dir.hpp"

namespace durable::test {

// The Database::open target of an engine.
struct Target {
    std::string target;
};

struct Engine {
    explicit Engine(std::shared_ptr<Registry> reg, HostOptions opts = {}, std::string file = "test.db")
        : registry(std::move(reg)), path(dir.file(file)), db(Database::open(path)), options(fast(std::move(opts))) {
        host = std::make_unique<Host>(db, registry, options);
        host->start();
    }
    Engine(std::shared_ptr<Registry> reg, HostOptions opts, Target t)
        : registry(std::move(reg)), path(std::move(t.target)), db(Database::open(path)),
          options(fast(std::move(opts))) {
        host = std::make_unique<Host>(db, registry, options);
        host->start();
    }
    ~Engine() {
        if (host) host->stop();
    }
    // A client attached to the host.
    Client client() { return host->client(); }
    // Stops the host and starts a new one on the same file (a process restart).
    void restart(bool graceful = true) {
        if (host) {
            if (graceful) {
                host->stop();
            } else {
                host->abandon();
            }
            host.reset();
        }
        db = Database::open(path);
        host = std::make_unique<Host>(db, registry, options);
        host->start();
    }
    static HostOptions fast(HostOptions o) {
        if (o.lease_duration == std::chrono::milliseconds(10'000)) o.lease_duration = std::chrono::milliseconds(1'000);
        o.poll_interval = std::chrono::milliseconds(10);
        return o;
    }

    TempDir dir;
    std::shared_ptr<Registry> registry;
    std::string path;
    Database db;
    HostOptions options;
    std::unique_ptr<Host> host;
};

// Holds the store kind's database; a base so it is made before the Engine and dropped after.
template <class Kind>
struct KindHolder {
    Kind kind;
};

// An Engine on a fresh database of `Kind` (SqliteKind, PostgresKind).
template <class Kind>
struct EngineOn : KindHolder<Kind>, Engine {
    explicit EngineOn(std::shared_ptr<Registry> reg, HostOptions opts = {})
        : KindHolder<Kind>(), Engine(std::move(reg), std::move(opts), Target{this->kind.target()}) {}
};

}  // namespace durable::test
