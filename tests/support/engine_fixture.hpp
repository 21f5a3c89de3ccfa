// A database in a temp dir with a host and a client on it, for engine tests.
#pragma once

#include <durable/durable.hpp>

#include <memory>

#include "support/temp_dir.hpp"

namespace durable::test {

struct Engine {
    explicit Engine(std::shared_ptr<Registry> reg, HostOptions opts = {}, std::string file = "test.db")
        : registry(std::move(reg)), path(dir.file(file)), db(Database::open(path)), options(fast(std::move(opts))) {
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

}  // namespace durable::test
