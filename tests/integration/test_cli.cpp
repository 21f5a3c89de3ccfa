// The `durable` command line against a real database file: each subcommand's output and
// exit code (0 ok, 1 operation failed, 2 usage error), with a real worker process running the
// example orchestrations where instances must make progress.
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <durable/durable.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using durable::Json;
using durable::test::Process;
using durable::test::TempDir;

namespace {

const std::string kDurable = std::string(DURABLE_BIN_DIR) + "/durable";

struct Result {
    int code = -1;
    std::vector<std::string> out;
    std::string err;

    std::string stdout_text() const {
        std::string s;
        for (const auto& l : out) s += l + "\n";
        return s;
    }
    bool out_has(const std::string& needle) const { return stdout_text().find(needle) != std::string::npos; }
    bool err_has(const std::string& needle) const { return err.find(needle) != std::string::npos; }
};

// Runs `program args...` to completion (bounded), collecting stdout lines and stderr.
Result run_program(const TempDir& dir, const std::string& program, const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = 60s) {
    static int counter = 0;
    std::string err_path = dir.file("stderr-" + std::to_string(++counter) + ".txt");
    Process p(program, args, {err_path});
    auto f = durable::test::read_to_end(p, timeout);
    if (!f.code) FAIL("`durable` did not finish within ", timeout.count(), " ms");
    return Result{*f.code, std::move(f.lines), durable::test::read_text(err_path)};
}

// `durable --db <db> args...`
Result durable_cli(const TempDir& dir, const std::string& db, std::vector<std::string> args,
                   std::chrono::milliseconds timeout = 60s) {
    args.insert(args.begin(), {"--db", db});
    return run_program(dir, kDurable, args, timeout);
}

// A `durable worker` process on `db`, stopped with SIGTERM when the test is done.
struct Worker {
    Worker(const TempDir& dir, const std::string& db, const std::string& host_id)
        : log(dir.file(host_id + ".log")),
          process(kDurable, {"--db", db, "worker", "--host-id", host_id, "--lease", "2s", "--poll", "20ms"}, {log}) {}
    ~Worker() {
        process.signal(SIGTERM);
        process.wait(20s);
    }
    std::string log;
    Process process;
};

}  // namespace

TEST_CASE("durable --help and usage errors exit with 0 and 2") {
    TempDir dir;
    auto db = dir.file("cli.db");
    auto help = run_program(dir, kDurable, {"--help"});
    CHECK(help.code == 0);
    for (const char* sub : {"start", "status", "wait", "list", "history", "raise", "terminate", "suspend", "resume",
                            "purge", "worker", "hosts", "leases", "demo"}) {
        CHECK_MESSAGE(help.out_has(std::string("  ") + sub), sub);
    }
    CHECK(run_program(dir, kDurable, {"start", "--help"}).code == 0);
    CHECK(run_program(dir, kDurable, {"history", "--help"}).out_has("--json"));

    CHECK(run_program(dir, kDurable, {}).code == 2);
    CHECK(run_program(dir, kDurable, {"frobnicate"}).code == 2);
    CHECK(durable_cli(dir, db, {"list", "--bogus"}).code == 2);
    CHECK(durable_cli(dir, db, {"start"}).code == 2);  // NAME is required

    auto unknown = durable_cli(dir, db, {"start", "no_such_thing"});
    CHECK(unknown.code == 2);
    CHECK(unknown.err_has("no orchestration named 'no_such_thing'"));
    CHECK(unknown.err_has("order_pipeline"));  // lists the known ones

    auto bad_json = durable_cli(dir, db, {"start", "word_count", "--input", "{\"documents\": 3,"});
    CHECK(bad_json.code == 2);
    CHECK(bad_json.err_has("--input is not valid JSON (at byte 17)"));  // the end of the 16 bytes
    auto bare_word = durable_cli(dir, db, {"start", "word_count", "--input", "hello"});
    CHECK(bare_word.code == 2);
    CHECK(bare_word.err_has("must be quoted"));

    auto bad_duration = durable_cli(dir, db, {"wait", "x", "--timeout", "5 parsecs"});
    CHECK(bad_duration.code == 2);
    CHECK(bad_duration.err_has("is not a duration"));
    auto bad_status = durable_cli(dir, db, {"list", "--status", "Sleeping"});
    CHECK(bad_status.code == 2);
    CHECK(bad_status.err_has("use one of Pending, Running"));
    CHECK_FALSE(std::filesystem::exists(db));  // nothing above created the file
}

TEST_CASE("reading commands on a missing file or an unknown instance exit with 1 and say so") {
    TempDir dir;
    auto db = dir.file("cli.db");
    auto missing = durable_cli(dir, db, {"status", "abc"});
    CHECK(missing.code == 1);
    CHECK(missing.err_has("there is no database at"));
    CHECK_FALSE(std::filesystem::exists(db));

    auto started = durable_cli(dir, db, {"start", "word_count", "--input", "{\"documents\": 2}", "--id", "wc-1"});
    REQUIRE(started.code == 0);
    CHECK(started.out == std::vector<std::string>{"wc-1"});
    for (const char* sub : {"status", "history", "terminate", "suspend", "resume", "purge", "wait"}) {
        auto r = durable_cli(dir, db, {sub, "nope"});
        CHECK_MESSAGE(r.code == 1, sub);
        CHECK_MESSAGE(r.err_has("no instance 'nope'"), sub, ": ", r.err);
    }
    auto raise = durable_cli(dir, db, {"raise", "nope", "approved"});
    CHECK(raise.code == 1);
    CHECK(raise.err_has("no instance 'nope'"));
    // No worker runs: the instance stays Pending and wait times out.
    auto wait = durable_cli(dir, db, {"wait", "wc-1", "--timeout", "300ms"});
    CHECK(wait.code == 1);
    CHECK(wait.err_has("did not finish within 300 ms"));
}

TEST_CASE("start, wait, status, list, history, hosts, leases and metrics with a worker running") {
    TempDir dir;
    auto db = dir.file("cli.db");
    Worker worker(dir, db, "cli-worker");

    auto started = durable_cli(dir, db, {"start", "order_pipeline", "--id", "order-a", "--input",
                                         R"({"order_id":"A","items":[{"sku":"book","quantity":2,"price":10}]})",
                                         "--wait", "--timeout", "30s"});
    CHECK(started.code == 0);
    CHECK(started.out.front() == "order-a");
    CHECK(started.out_has("status:      Completed"));
    CHECK(started.out_has("\"status\":\"shipped\""));

    // Without --input the example input is used (and said so).
    auto example = durable_cli(dir, db, {"start", "booking_saga", "--id", "trip-x", "--wait", "--json"});
    CHECK(example.code == 0);
    CHECK(example.err_has("using the example input"));
    {
        std::string text;
        for (std::size_t i = 1; i < example.out.size(); ++i) text += example.out[i];
        auto j = Json::parse(text);
        CHECK(j["status"] == "Completed");
        CHECK(j["output"]["status"] == "booked");
    }

    auto status = durable_cli(dir, db, {"status", "order-a", "--json"});
    REQUIRE(status.code == 0);
    auto state = Json::parse(status.stdout_text());
    CHECK(state["name"] == "order_pipeline");
    CHECK(state["output"]["host"] == "cli-worker");

    auto list = durable_cli(dir, db, {"list"});
    CHECK(list.code == 0);
    CHECK(list.out_has("order-a"));
    CHECK(list.out_has("order-a/payment"));
    CHECK(list.out_has("trip-x"));
    auto filtered = durable_cli(dir, db, {"list", "--status", "completed", "--name", "order_pipeline", "--json"});
    REQUIRE(filtered.code == 0);
    auto page = Json::parse(filtered.stdout_text());
    REQUIRE(page["instances"].size() == 1);
    CHECK(page["instances"][0]["id"] == "order-a");
    auto first = durable_cli(dir, db, {"list", "--limit", "1", "--json"});
    auto p1 = Json::parse(first.stdout_text());
    REQUIRE(p1["instances"].size() == 1);
    REQUIRE(p1["next"].is_string());
    auto second = durable_cli(dir, db, {"list", "--limit", "1", "--after", p1["next"].get<std::string>(), "--json"});
    auto p2 = Json::parse(second.stdout_text());
    REQUIRE(p2["instances"].size() == 1);
    CHECK(p2["instances"][0]["id"] != p1["instances"][0]["id"]);
    CHECK(durable_cli(dir, db, {"list", "--limit", "1"}).err_has("more with: durable list --after"));

    auto history = durable_cli(dir, db, {"history", "order-a"});
    CHECK(history.code == 0);
    CHECK(history.out_has("ExecutionStarted"));
    CHECK(history.out_has("TaskScheduled #0"));
    CHECK(history.out_has("validate_order"));
    CHECK(history.out_has("SubOrchestrationCreated"));
    CHECK(history.out_has("ExecutionCompleted"));
    auto jsonl = durable_cli(dir, db, {"history", "order-a", "--json"});
    REQUIRE(jsonl.code == 0);
    REQUIRE(!jsonl.out.empty());
    CHECK(Json::parse(jsonl.out.front())["event"]["t"] == "ExecutionStarted");
    CHECK(Json::parse(jsonl.out.back())["event"]["t"] == "ExecutionCompleted");

    auto hosts = durable_cli(dir, db, {"hosts"});
    CHECK(hosts.code == 0);
    CHECK(hosts.out_has("cli-worker"));
    CHECK(hosts.out_has("alive"));
    auto hosts_json = Json::parse(durable_cli(dir, db, {"hosts", "--json"}).stdout_text());
    CHECK(hosts_json[0]["id"] == "cli-worker");
    CHECK(durable_cli(dir, db, {"leases"}).code == 0);
    auto metrics = durable_cli(dir, db, {"metrics"});
    CHECK(metrics.code == 0);
    CHECK(metrics.out_has("durable_instances{name=\"order_pipeline\",status=\"Completed\"} 1"));
    CHECK(metrics.out_has("durable_host_up{host=\"cli-worker\"} 1"));
}

TEST_CASE("raise, suspend, resume, terminate and purge steer instances") {
    TempDir dir;
    auto db = dir.file("cli.db");
    Worker worker(dir, db, "steer-worker");

    // raise: an approval decided from the command line.
    REQUIRE(durable_cli(dir, db, {"start", "approval", "--id", "ap-1", "--input", R"({"request_id":"r1"})"}).code == 0);
    auto raised = durable_cli(dir, db, {"raise", "ap-1", "approved", "--data", R"({"by":"cli"})"});
    CHECK(raised.code == 0);
    CHECK(raised.out_has("raised 'approved' on ap-1"));
    auto done = durable_cli(dir, db, {"wait", "ap-1", "--timeout", "30s", "--json"});
    CHECK(done.code == 0);
    CHECK(Json::parse(done.stdout_text())["output"]["decided_by"] == "cli");
    auto late = durable_cli(dir, db, {"raise", "ap-1", "approved"});
    CHECK(late.code == 1);
    CHECK(late.err_has("has finished"));
    CHECK(durable_cli(dir, db, {"raise", "ap-1", "approved", "--data", "{oops"}).code == 2);

    // suspend / resume: a monitor that runs until stopped.
    REQUIRE(durable_cli(dir, db, {"start", "monitor", "--id", "mon-1", "--input",
                                  R"({"target":"api","interval_ms":50})"})
                .code == 0);
    auto wait_for_status = [&](const std::string& id, const std::string& want) {
        for (int i = 0; i < 200; ++i) {
            auto s = durable_cli(dir, db, {"status", id, "--json"});
            if (s.code == 0 && Json::parse(s.stdout_text())["status"] == want) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    };
    REQUIRE(wait_for_status("mon-1", "Running"));
    CHECK(durable_cli(dir, db, {"suspend", "mon-1", "--reason", "maintenance"}).code == 0);
    CHECK(wait_for_status("mon-1", "Suspended"));
    CHECK(durable_cli(dir, db, {"resume", "mon-1"}).code == 0);
    CHECK(wait_for_status("mon-1", "Running"));

    // terminate: wait then reports the instance did not complete (exit 1).
    auto terminated = durable_cli(dir, db, {"terminate", "mon-1", "--reason", "enough"});
    CHECK(terminated.code == 0);
    auto after = durable_cli(dir, db, {"wait", "mon-1", "--timeout", "30s"});
    CHECK(after.code == 1);
    CHECK(after.out_has("status:      Terminated"));
    CHECK(after.err_has("was terminated"));
    CHECK(durable_cli(dir, db, {"history", "mon-1"}).out_has("ExecutionTerminated"));

    // purge: one instance, then in bulk; running instances and bad filters are refused.
    CHECK(durable_cli(dir, db, {"purge"}).code == 2);
    CHECK(durable_cli(dir, db, {"purge", "ap-1", "--status", "Completed"}).code == 2);
    auto running_status = durable_cli(dir, db, {"purge", "--status", "Running"});
    CHECK(running_status.code == 2);
    CHECK(running_status.err_has("only finished instances can be purged"));
    auto purged = durable_cli(dir, db, {"purge", "ap-1"});
    CHECK(purged.code == 0);
    CHECK(durable_cli(dir, db, {"status", "ap-1"}).code == 1);
    auto bulk = durable_cli(dir, db, {"purge", "--status", "Terminated,Completed", "--older-than", "0s"});
    CHECK(bulk.code == 0);
    CHECK(bulk.out_has("purged 1 instance"));  // mon-1
    CHECK(durable_cli(dir, db, {"status", "mon-1"}).code == 1);
}

TEST_CASE("durable worker stops gracefully on SIGTERM and the hosts table says so") {
    TempDir dir;
    auto db = dir.file("cli.db");
    {
        Process worker(kDurable, {"--db", db, "worker", "--host-id", "w-term", "--lease", "1s"},
                       {dir.file("w.log")});
        bool alive = false;
        for (int i = 0; i < 100 && !alive; ++i) {
            std::this_thread::sleep_for(50ms);
            alive = durable_cli(dir, db, {"hosts"}).out_has("alive");
        }
        REQUIRE(alive);
        worker.signal(SIGTERM);
        auto code = worker.wait(20s);
        REQUIRE(code);
        CHECK(*code == 0);
    }
    auto hosts = durable_cli(dir, db, {"hosts"});
    CHECK(hosts.out_has("w-term"));
    CHECK(hosts.out_has("stopped"));
    CHECK(durable::test::read_text(dir.file("w.log")).find("SIGTERM received, stopping") != std::string::npos);
}

TEST_CASE("without --db the database is durable.db in the current directory") {
    TempDir dir;
    std::string script = "cd '" + dir.path().string() + "' && '" + kDurable +
                         "' start word_count --input '{\"documents\":1}' --id here";
    auto r = run_program(dir, "/bin/sh", {"-c", script});
    CHECK(r.code == 0);
    CHECK(std::filesystem::exists(dir.path() / "durable.db"));
}

TEST_CASE("split workers: --only orchestrations and --only activities run an instance together; hosts shows who runs "
          "what; an instance nobody runs says why it waits") {
    TempDir dir;
    auto db = dir.file("split.db");
    {
        Process orch(kDurable, {"--db", db, "worker", "--host-id", "orch-only", "--only", "orchestrations", "--lease",
                                "2s", "--poll", "20ms"},
                     {dir.file("orch.log")});
        Process acts(kDurable, {"--db", db, "worker", "--host-id", "acts-only", "--only", "activities", "--lease", "2s",
                                "--poll", "20ms"},
                     {dir.file("acts.log")});
        auto started = durable_cli(dir, db, {"start", "order_pipeline", "--id", "split-a", "--input",
                                             R"({"order_id":"A","items":[{"sku":"book","quantity":2,"price":10}]})",
                                             "--wait", "--timeout", "60s"});
        CHECK(started.code == 0);
        CHECK(started.out_has("status:      Completed"));

        auto hosts = durable_cli(dir, db, {"hosts", "--json"});
        REQUIRE(hosts.code == 0);
        auto j = Json::parse(hosts.stdout_text());
        int seen = 0;
        for (const auto& h : j) {
            if (h["id"] == "orch-only") {
                ++seen;
                CHECK_FALSE(h["orchestrations"].empty());
                CHECK(h["activities"].empty());
            } else if (h["id"] == "acts-only") {
                ++seen;
                CHECK(h["orchestrations"].empty());
                CHECK_FALSE(h["activities"].empty());
            }
        }
        CHECK(seen == 2);
        CHECK(durable_cli(dir, db, {"hosts"}).out_has("orchestrations: -"));

        // A name no live host registers: scheduled anyway (a host may come later), said so.
        auto nobody = durable_cli(dir, db, {"start", "not_deployed_yet", "--id", "later-1", "--force"});
        CHECK(nobody.code == 0);
        CHECK(nobody.err_has("no live host registers 'not_deployed_yet'"));
        auto status = durable_cli(dir, db, {"status", "later-1"});
        CHECK(status.out_has("status:      Pending"));
        CHECK(status.out_has("waiting for a host that registers 'not_deployed_yet'"));
        CHECK(durable_cli(dir, db, {"list"}).out_has("(waiting for a host that registers 'not_deployed_yet')"));
        CHECK(Json::parse(durable_cli(dir, db, {"status", "later-1", "--json"}).stdout_text())["waiting_for"] ==
              "waiting for a host that registers 'not_deployed_yet'");
        orch.signal(SIGTERM);
        acts.signal(SIGTERM);
        CHECK(orch.wait(20s) == 0);
        CHECK(acts.wait(20s) == 0);
    }
    auto bad = durable_cli(dir, db, {"worker", "--activities", "no_such_activity"});
    CHECK(bad.code == 2);
    CHECK(bad.err_has("no activity named 'no_such_activity'"));
    CHECK(durable_cli(dir, db, {"worker", "--only", "everything"}).code == 2);
}
