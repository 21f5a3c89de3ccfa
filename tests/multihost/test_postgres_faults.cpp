// Faults only a database server has, with real host processes on PostgreSQL: the server
// restarted under load (pg_ctl restart -m fast), and hosts whose machine clocks disagree with
// the server's by seconds (libfaketime moves a host's wall clock 5 s ahead or behind).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "multihost/cluster.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::ClusterOn;
using durable::test::HostConfig;
using durable::test::OwnPostgresKind;
using durable::test::PostgresKind;

namespace {

// Completed instances of `ids`, or -1 while the database cannot be read (restarting).
template <class C>
std::int64_t completed(C& c) {
    try {
        return c.count_status("Completed");
    } catch (const std::exception&) {
        return -1;
    }
}

const char* kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

std::vector<std::string> skewed(const std::string& offset) {
    return {std::string("LD_PRELOAD=") + kFaketime, "FAKETIME=" + offset, "FAKETIME_DONT_FAKE_MONOTONIC=1"};
}

// The wall clock (ms) a process started with `env` settings reads.
std::int64_t clock_under(const std::vector<std::string>& env) {
    std::vector<std::string> args = env;
    args.insert(args.end(), {"/bin/date", "+%s%3N"});
    test::Process p("/usr/bin/env", args);
    auto done = test::read_to_end(p, 10s);
    REQUIRE(done.code == 0);
    REQUIRE(!done.lines.empty());
    return std::stoll(done.lines.front());
}

}  // namespace

TEST_CASE("PostgreSQL restarted (pg_ctl restart -m fast) while 500 instances run: each completes exactly once, and "
          "the hosts recover on their own") {
    ClusterOn<OwnPostgresKind> c;
    HostConfig cfg;
    cfg.lease_ms = 3000;
    cfg.activity_ms = 5;
    c.start_host("h1", cfg);
    c.start_host("h2", cfg);
    auto ids = c.schedule_many("seq5", Json(), 500);
    REQUIRE(test::wait_until([&] { return completed(c) >= 25; }, 120s, 5ms));
    auto before = completed(c);
    c.kind.server.restart();
    MESSAGE("restarted PostgreSQL with " << before << " of 500 instances completed");
    bool all = test::wait_until([&] { return completed(c) == 500; }, 240s, 50ms);
    INFO("h1's log:\n" << c.stderr_of("h1"));
    INFO("statuses: " << Json(c.count_by_status()).dump());
    REQUIRE(all);
    CHECK(before < 500);  // the restart came while work was in flight
    auto problems = c.history_problems(ids, 5);
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));
    // The hosts saw the outage and got through it without help.
    auto logs = c.stderr_of("h1") + c.stderr_of("h2");
    bool saw = logs.find("unreachable") != std::string::npos || logs.find("lost the connection") != std::string::npos ||
               logs.find("terminating connection") != std::string::npos;
    CHECK(saw);
    // And they go on working afterwards.
    auto more = c.schedule_many("seq5", Json(), 20, 1);
    for (const auto& id : more) CHECK(c.client.wait_for_completion(id, 60s).status == Status::Completed);
    for (const char* h : {"h1", "h2"}) CHECK(c.stop_host(h).exit_code == 0);
}

TEST_CASE("hosts with clocks 5 s ahead and 5 s behind the server's keep each other's leases, fence, and take over "
          "correctly") {
    REQUIRE_MESSAGE(std::filesystem::exists(kFaketime), "libfaketime is needed (apt-get install libfaketime)");
    ClusterOn<PostgresKind> c;
    // The skew is real: a process under each setting reads a wall clock seconds off ours.
    auto ours = test::wall_ms();
    CHECK(clock_under(skewed("+5s")) - ours >= 4'000);
    CHECK(ours - clock_under(skewed("-5s")) >= 4'000);

    HostConfig behind;
    behind.lease_ms = 2000;  // renewal every second, fencing after 1.33 s
    behind.activity_ms = 300;
    behind.env = skewed("-5s");
    HostConfig ahead = behind;
    ahead.env = skewed("+5s");

    // 1. Leases are compared in the server's clock: the host 5 s ahead does not take the
    //    instances of the host 5 s behind while that one renews them. (Compared in the hosts'
    //    own clocks, every lease of the host behind would look expired to the one ahead.)
    c.start_host("behind", behind);
    auto longs = c.schedule_many("long_activity", Json{{"ms", 6000}}, 4, 1);
    REQUIRE(test::wait_until(
        [&] {
            auto starts = c.starts();
            return std::all_of(longs.begin(), longs.end(), [&](const std::string& id) { return starts.count({id, 0}); });
        },
        30s, 5ms));
    c.start_host("ahead", ahead);
    for (const auto& id : longs) CHECK(c.client.wait_for_completion(id, 60s).status == Status::Completed);
    for (const auto& [key, n] : c.starts()) CHECK_MESSAGE(n == 1, key.first << " task " << key.second << " ran " << n);
    for (const auto& r : c.activity_log()) CHECK(r.host == "behind");
    CHECK(c.history_problems(longs, 1).empty());

    // 2. The host behind stops (SIGSTOP) holding leases: the one ahead takes them over once
    //    they expire on the server's clock, the stopped host's late commits are refused when
    //    it wakes, and every instance completes exactly once.
    // The host ahead waits (SIGSTOP, holding nothing) while the new chains go to the host behind,
    // so that the host behind holds some of them when it is stopped below, whoever is faster.
    REQUIRE(c.host("ahead").pause());
    auto chains = c.schedule_many("seq5", Json(), 12, 1);
    std::vector<store::InstanceRow> held;
    REQUIRE(test::wait_until(
        [&] {
            if (!c.host("behind").pause()) return false;
            held = c.owned_by("behind");
            if (!held.empty()) return true;
            c.host("behind").resume();
            return false;
        },
        30s, 1ms));
    c.host("ahead").resume();
    MESSAGE("stopped the host behind holding " << held.size() << " instances");
    bool taken = test::wait_until([&] { return c.owned_by("behind").empty(); }, 30s, 5ms);
    CHECK(taken);
    for (const auto& id : chains) CHECK(c.client.wait_for_completion(id, 60s).status == Status::Completed);
    c.host("behind").resume();
    auto problems = c.history_problems(chains, 5);
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));
    auto sa = c.stop_host("ahead");
    CHECK(sa.exit_code == 0);
    REQUIRE(sa.stats.is_object());
    CHECK(sa.stats["takeovers"].get<std::int64_t>() >= 1);
    CHECK(c.stop_host("behind").exit_code == 0);
}
