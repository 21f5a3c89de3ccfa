// store/postgres/postgres_store.hpp — the PostgreSQL store: hosts on many machines sharing one
// database server.
//
// The same invariants as the SQLite store (store/store.hpp): one transaction per group of
// episodes, the lease CAS on `version` and `lease_owner`, renewal that never changes
// `version`, fenced late commits. What differs, and why:
//  - Time: lease and timer times are the database server's clock. The store measures the
//    offset of the server's clock_timestamp() from this machine's clock (at open and every few
//    seconds, halving the round trip) and Store::now() is this machine's clock corrected by
//    it; the runtime reads its times there (Database::clock()), so hosts whose clocks are
//    seconds apart still agree on who holds what.
//  - Group commit with pipelining: one writer connection per process; every write is one
//    self-contained statement (a data-modifying CTE whose dependent writes are gated on the
//    CAS row it RETURNs), so a batch of many episodes goes to the server in one round trip
//    inside one transaction, and callers are released only after COMMIT.
//  - Claims pick candidates with FOR UPDATE SKIP LOCKED: hosts never queue on each other.
//  - Connection loss is normal: connections come from SharedProviders (rebuilt when broken,
//    their factory retried with backoff forever) and calls go through resilience pipelines
//    (transient errors retried, a circuit breaker in front). A batch whose COMMIT outcome is
//    unknown is resolved by reading the instances' versions, never applied twice. Writes
//    wait out an outage; reads retry, then fail with StoreError.
//  - Change detection: every commit NOTIFYs `durable_changes`; a listener connection LISTENs,
//    so change_counter() moves when any process commits without polling the server.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace durable::store {

struct PostgresOptions {
    bool synchronous_commit = true;            // false: SET synchronous_commit = off
    int max_batch_ops = 1'000;                 // writes carried by one transaction at most
    int readers = 4;                           // reader connections (each its own SharedProvider)
    std::chrono::milliseconds connect_wait{0};  // how long open() waits for a server that is down
    bool read_only = false;                    // inspection only: no writer, no migration
    // Change-feed retention: rows older than this, or beyond this many, are pruned (about
    // once a second, in a writer's transaction); the newest row always stays.
    std::int64_t change_feed_max_age_ms = 3'600'000;
    std::int64_t change_feed_max_rows = 100'000;
};

// Connects to the server `conninfo` names (a libpq URL or key=value string), migrates the
// database under an advisory lock, and starts the commit thread. Throws durable::StoreError
// saying what is wrong (unreachable, authentication, missing database, another program's
// tables, a newer schema) and what to do.
std::shared_ptr<Store> open_postgres(const std::string& conninfo, const PostgresOptions& options = {});

// `conninfo` with any password left out, for messages and logs.
std::string redact_conninfo(const std::string& conninfo);

}  // namespace durable::store
