// Several host processes on one SQLite file, no faults: the lease protocol shares the work
// (every instance runs once, on one host at a time), renewal keeps long work where it is, and
// a clean shutdown hands leases over at once.
//
// Hosts are real processes (test_host); the test schedules with a standalone Client and
// reads the file. Bounds are generous for a loaded 2-core CI machine; the figures measured
// are printed with MESSAGE.
#include <doctest/doctest.h>

#include "multihost/cluster.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Cluster;
using durable::test::HostConfig;

TEST_CASE("three hosts on one file run 1,000 instances, each exactly once, sharing the work") {
    Cluster c;
    HostConfig cfg;
    cfg.lease_ms = 3000;  // no failover here: a long lease keeps a busy machine from fencing anyone
    const std::vector<std::string> names = {"h1", "h2", "h3"};
    for (const auto& n : names) c.start_host(n, cfg);

    auto started = std::chrono::steady_clock::now();
    auto ids = c.schedule_many("seq5", Json(), 1000);
    MESSAGE(fmt::format("scheduling 1,000 instances took {:.2f} s", test::seconds_since(started)));
    bool done = test::wait_until([&] { return c.count_status("Completed") == 1000; }, 120s, 50ms);
    double elapsed = test::seconds_since(started);
    INFO("statuses: " << Json(c.count_by_status()).dump());
    REQUIRE(done);
    MESSAGE(fmt::format("1,000 seq5 instances on 3 hosts: {:.2f} s ({:.0f} instances/s)", elapsed, 1000 / elapsed));

    // Every instance completed once, with its output, and let its lease go.
    for (const auto& id : ids) {
        auto s = c.client.get_status(id);
        REQUIRE(s);
        CHECK(s->status == Status::Completed);
        CHECK(s->output == 5);
        CHECK_FALSE(s->lease_owner);
    }
    auto problems = c.history_problems(ids, 5);
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));

    // No faults, so no activity ran twice; each host did some of the work.
    std::map<std::string, int> share;
    int duplicated = 0;
    for (const auto& [key, n] : c.starts()) {
        if (n != 1) ++duplicated;
    }
    for (const auto& r : c.activity_log()) {
        if (r.phase == "end") ++share[r.host];
    }
    CHECK(c.starts().size() == 5000);
    CHECK(duplicated == 0);
    MESSAGE("activities per host: " << Json(share).dump());
    for (const auto& n : names) CHECK_MESSAGE(share[n] > 0, "host " << n << " did no work");

    std::int64_t completed = 0, conflicts = 0, takeovers = 0;
    for (const auto& n : names) {
        auto s = c.stop_host(n);
        CHECK(s.exit_code == 0);
        REQUIRE(s.stats.is_object());
        completed += s.stats["completed"].get<std::int64_t>();
        conflicts += s.stats["lease_conflicts"].get<std::int64_t>();
        takeovers += s.stats["takeovers"].get<std::int64_t>();
    }
    CHECK(completed == 1000);
    CHECK(conflicts == 0);
    CHECK(takeovers == 0);
}

TEST_CASE("lease renewal keeps an instance whose activity runs 3 x the lease from being taken over") {
    Cluster c;
    HostConfig cfg;
    cfg.lease_ms = 1000;
    c.start_host("a", cfg);
    c.start_host("b", cfg);

    const int activity_ms = 3 * cfg.lease_ms;
    auto ids = c.schedule_many("long_activity", Json{{"ms", activity_ms}}, 4, 1);

    // Watch the leases while the activities run: each instance keeps the owner it got first.
    std::map<std::string, std::set<std::string>> owners;
    auto all_done = [&] {
        bool done = true;
        for (const auto& id : ids) {
            auto row = durable::detail::store_of(c.db)->get_instance(id);
            if (!row) return false;
            if (row->lease_owner) owners[id].insert(*row->lease_owner);
            done = done && is_terminal(row->status);
        }
        return done;
    };
    bool done = test::wait_until(all_done, 20s, 20ms);
    REQUIRE(done);

    for (const auto& id : ids) {
        CHECK(c.client.get_status(id)->status == Status::Completed);
        CHECK_MESSAGE(owners[id].size() == 1, id << " had lease owners " << Json(owners[id]).dump());
    }
    auto problems = c.history_problems(ids, 1);
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));
    // Each long activity started once and finished once.
    for (const auto& id : ids) {
        int starts = 0, ends = 0;
        for (const auto& r : c.activity_log()) {
            if (r.instance != id) continue;
            (r.phase == "start" ? starts : ends) += 1;
        }
        CHECK_MESSAGE(starts == 1, id << " started " << starts << " times");
        CHECK(ends == 1);
    }
    std::int64_t takeovers = 0, renewals = 0, conflicts = 0;
    for (const char* n : {"a", "b"}) {
        auto s = c.stop_host(n);
        CHECK(s.exit_code == 0);
        REQUIRE(s.stats.is_object());
        takeovers += s.stats["takeovers"].get<std::int64_t>();
        renewals += s.stats["renewals"].get<std::int64_t>();
        conflicts += s.stats["lease_conflicts"].get<std::int64_t>();
    }
    CHECK(takeovers == 0);
    CHECK(conflicts == 0);
    CHECK(renewals >= 4);  // 3 leases' worth of work at one renewal per half lease, on each host
}

TEST_CASE("a clean shutdown (SIGTERM) releases leases at once: another host takes over without waiting") {
    Cluster c;
    HostConfig cfg;
    cfg.lease_ms = 30'000;  // expiry would take 30 s: a takeover within seconds can only be the release
    cfg.activity_ms = 400;
    c.start_host("a", cfg);

    // Work in flight on a: one long activity and a few seq5 chains of slow steps.
    auto long_id = c.client.schedule("long_activity", Json{{"ms", 2000}});
    auto chains = c.schedule_many("seq5", Json(), 5, 1);
    bool running = test::wait_until(
        [&] {
            for (const auto& r : c.activity_log()) {
                if (r.instance == long_id && r.phase == "start") return true;
            }
            return false;
        },
        10s);
    REQUIRE(running);
    REQUIRE(test::wait_until([&] { return c.owned_by("a").size() == 6; }, 10s));

    c.start_host("b", cfg);
    auto sigterm = std::chrono::steady_clock::now();
    auto stopped = c.stop_host("a");
    double stop_s = test::seconds_since(sigterm);
    CHECK(stopped.exit_code == 0);
    MESSAGE(fmt::format("host a stopped {:.3f} s after SIGTERM", stop_s));
    CHECK(stop_s < 10);
    // At once, nothing is held by a any more in a way that blocks others.
    for (const auto& row : c.owned_by("a")) CHECK(row.lease_expires_at <= test::wall_ms());

    std::vector<std::string> all = chains;
    all.push_back(long_id);
    bool done = test::wait_until(
        [&] {
            for (const auto& id : all) {
                if (c.client.get_status(id)->status != Status::Completed) return false;
            }
            return true;
        },
        20s, 20ms);
    double takeover_s = test::seconds_since(sigterm);
    REQUIRE(done);
    MESSAGE(fmt::format("host b finished a's instances {:.3f} s after a's SIGTERM (lease {} s)", takeover_s,
                        cfg.lease_ms / 1000));
    CHECK(takeover_s < 15);  // half the lease: the leases were released, not left to expire

    auto problems = c.history_problems(chains, 5);
    auto long_problems = c.history_problems({long_id}, 1);
    problems.insert(problems.end(), long_problems.begin(), long_problems.end());
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));
    for (const auto& id : all) CHECK(c.client.get_status(id)->lease_owner == std::nullopt);

    // The long activity was cut short on a (cancelled, no "end") and ran again on b.
    int a_starts = 0, a_ends = 0, b_ends = 0;
    for (const auto& r : c.activity_log()) {
        if (r.instance != long_id) continue;
        if (r.host == "a") (r.phase == "start" ? a_starts : a_ends) += 1;
        if (r.host == "b" && r.phase == "end") ++b_ends;
    }
    CHECK(a_starts == 1);
    CHECK(a_ends == 0);
    CHECK(b_ends == 1);

    auto sb = c.stop_host("b");
    CHECK(sb.exit_code == 0);
    REQUIRE(sb.stats.is_object());
    CHECK(sb.stats["takeovers"].get<std::int64_t>() >= 1);
}
