// durable-bench at tiny sizes: every workload runs, verifies itself, exits 0 and prints one
// JSON line with the documented fields. No timing is asserted (figures belong in
// bench/README.md); only that the fields exist, have sane types and the run was correct.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kBench = std::string(DURABLE_BIN_DIR) + "/durable-bench";

struct Run {
    std::optional<int> exit_code;
    std::vector<json> lines;
    std::string stderr_text;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs durable-bench with `args`; every wait bounded (the whole run by `limit`).
Run run_bench(const std::vector<std::string>& args, std::chrono::seconds limit = 240s) {
    REQUIRE_MESSAGE(std::filesystem::exists(kBench),
                    "durable-bench is not built at " << kBench << "; build it (ninja durable-bench) or configure "
                                                     << "with -DDURABLE_BUILD_BENCH=ON");
    durable::test::TempDir dir;
    durable::test::ProcessOptions po;
    po.stderr_path = dir.file("stderr.log");
    Run run;
    {
        durable::test::Process p(kBench, args, po);
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto line = p.read_line(std::max(left, 1ms));
            if (!line) break;  // EOF (the bench exited) or out of time
            if (line->empty()) continue;
            try {
                run.lines.push_back(json::parse(*line));
            } catch (const std::exception& e) {
                FAIL_CHECK("stdout line is not JSON (" << e.what() << "): " << *line);
            }
        }
        run.exit_code = p.wait(10s);
        if (!run.exit_code) p.kill();
    }
    run.stderr_text = slurp(po.stderr_path);
    return run;
}

void check_common(const json& j, const std::string& workload, const std::string& sync = "full") {
    INFO("line: " << j.dump());
    CHECK(j.value("workload", "") == workload);
    CHECK(j.value("ok", false));
    CHECK(j.value("sync", "") == sync);
    for (const char* key : {"instances", "activities", "completed", "duplicates"}) {
        REQUIRE_MESSAGE(j.contains(key), key);
        CHECK(j[key].is_number_integer());
    }
    for (const char* key : {"seconds", "orchestrations_per_sec", "activities_per_sec", "p50_ms", "p99_ms"}) {
        REQUIRE_MESSAGE(j.contains(key), key);
        CHECK(j[key].is_number());
        CHECK(j[key].get<double>() >= 0);
    }
    CHECK(j["duplicates"] == 0);
    CHECK(j["completed"] == j["instances"]);
    CHECK(j["activities"].get<std::int64_t>() >= j["instances"].get<std::int64_t>());
    CHECK(j["p99_ms"].get<double>() >= j["p50_ms"].get<double>());
    REQUIRE(j.contains("machine"));
    CHECK(j["machine"]["cores"].get<int>() >= 1);
}

// Runs one workload and returns its single line, after the common checks.
json run_one(const std::string& workload, std::vector<std::string> extra, const std::string& sync = "full") {
    std::vector<std::string> args{"--workload", workload, "--timeout", "120"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto run = run_bench(args);
    INFO("stderr of durable-bench:\n" << run.stderr_text);
    REQUIRE(run.exit_code.has_value());
    CHECK(*run.exit_code == 0);
    REQUIRE(run.lines.size() == 1);
    check_common(run.lines[0], workload, sync);
    return run.lines[0];
}

}  // namespace

TEST_CASE("bench smoke: sequence (W1) verifies its instances and reports host stats") {
    auto j = run_one("sequence", {"--instances", "12", "--concurrency", "4"});
    CHECK(j["instances"] == 12);
    CHECK(j["activities"] == 60);
    REQUIRE(j.contains("host_stats"));
    for (const char* key : {"claims", "takeovers", "lease_conflicts", "busy_wait_seconds"}) {
        CHECK_MESSAGE(j["host_stats"].contains(key), key);
    }
    CHECK(j["host_stats"]["completed"] == 12);
}

TEST_CASE("bench smoke: sequence with --sync normal on a kept --db file") {
    durable::test::TempDir dir;
    auto db = dir.file("kept.db");
    auto j = run_one("sequence", {"--instances", "6", "--concurrency", "3", "--sync", "normal", "--db", db}, "normal");
    CHECK(j["instances"] == 6);
    CHECK(std::filesystem::exists(db));  // a user's --db is kept
}

TEST_CASE("bench smoke: fanout (W2)") {
    auto j = run_one("fanout", {"--instances", "6", "--concurrency", "3"});
    CHECK(j["activities"] == 6 * 20);
}

TEST_CASE("bench smoke: latency (W3)") {
    auto j = run_one("latency", {"--instances", "10"});
    CHECK(j["instances"] == 10);
    CHECK(j["activities"] == 10);
}

TEST_CASE("bench smoke: recovery (W4) kills a worker process and still completes every instance once") {
    auto j = run_one("recovery", {"--instances", "30", "--lease", "500ms"});
    for (const char* key : {"lease_seconds", "recovery_seconds", "reexecuted_activities"}) {
        REQUIRE_MESSAGE(j.contains(key), key);
        CHECK(j[key].is_number());
        CHECK(j[key].get<double>() >= 0);
    }
    CHECK(j["lease_seconds"].get<double>() == doctest::Approx(0.5));
    CHECK(j["activity_executions"].get<std::int64_t>() >= 30 * 5);
    REQUIRE(j["host_stats"].is_array());
    CHECK(j["host_stats"].size() == 3);
}

TEST_CASE("bench smoke: hosts (W5) reports throughput and shares per host count") {
    auto j = run_one("hosts", {"--instances", "10", "--concurrency", "4", "--hosts", "1,2"});
    REQUIRE(j.contains("orchestrations_per_sec_by_hosts"));
    REQUIRE(j.contains("per_host_share"));
    for (const char* count : {"1", "2"}) {
        CHECK(j["orchestrations_per_sec_by_hosts"].contains(count));
        REQUIRE(j["per_host_share"].contains(count));
        const auto& shares = j["per_host_share"][count];
        REQUIRE(shares.is_array());
        CHECK(shares.size() == static_cast<std::size_t>(std::stoi(count)));
        double sum = 0;
        for (const auto& s : shares) sum += s.get<double>();
        CHECK(sum == doctest::Approx(1.0).epsilon(0.01));
    }
    CHECK(j["instances"] == 20);  // 10 per host count
}

TEST_CASE("bench smoke: history (W6) reports microseconds per activity per size") {
    auto j = run_one("history", {"--sizes", "3,10"});
    REQUIRE(j.contains("us_per_activity"));
    CHECK(j["us_per_activity"].contains("3"));
    CHECK(j["us_per_activity"].contains("10"));
    CHECK(j["activities"] == 13);
}

TEST_CASE("bench smoke: idle (W8) starts instances that wait, raises every event and reports memory") {
    auto run = run_bench({"--workload", "idle", "--instances", "40", "--concurrency", "8", "--timeout", "120"});
    INFO("stderr of durable-bench:\n" << run.stderr_text);
    REQUIRE(run.exit_code.has_value());
    CHECK(*run.exit_code == 0);
    REQUIRE(run.lines.size() == 1);
    const auto& j = run.lines[0];
    INFO("line: " << j.dump());
    CHECK(j.value("workload", "") == "idle");
    CHECK(j.value("ok", false));
    CHECK(j["instances"] == 40);
    CHECK(j["completed"] == 40);
    CHECK(j["duplicates"] == 0);
    for (const char* key : {"started_per_sec", "events_per_sec", "rss_mib_waiting", "rss_mib_peak_starting"}) {
        REQUIRE_MESSAGE(j.contains(key), key);
        CHECK(j[key].get<double>() > 0);
    }
}

TEST_CASE("bench smoke: sidecar runs W1's shape through the gRPC server and a C++ protocol worker") {
    auto j = run_one("sidecar", {"--instances", "12", "--concurrency", "4"});
    CHECK(j["instances"] == 12);
    CHECK(j["activities"] == 60);
    // Each instance: 6 orchestrator steps and 5 activities, each one work item.
    CHECK(j["work_items"] == 12 * 11);
    CHECK(j["refused_completions"] == 0);
    CHECK(j["host_stats"]["completed"] == 12);
}

TEST_CASE("bench smoke: a bad command line is refused with a non-zero exit") {
    auto run = run_bench({"--workload", "no-such-workload"}, 60s);
    REQUIRE(run.exit_code.has_value());
    CHECK(*run.exit_code != 0);
    CHECK(run.lines.empty());
}
