// The `durable` command line against a real database file: each subcommand's output and
// exit code (0 ok, 1 operation failed, 2 usage error, 3 a wait timed out), with a real worker
// process running the example orchestrations where instances must make progress.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <SQLiteCpp/Database.h>
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

// `durable args...` run by /bin/sh with standard input from `stdin_file`.
Result durable_with_stdin(const TempDir& dir, const std::string& db, const std::vector<std::string>& args,
                          const std::string& stdin_file) {
    std::string script = "exec '" + kDurable + "' --db '" + db + "'";
    for (const auto& a : args) script += " '" + a + "'";
    script += " < '" + stdin_file + "'";
    return run_program(dir, "/bin/sh", {"-c", script});
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
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
    // No worker runs: the instance stays Pending and wait times out, with its own exit code.
    auto wait = durable_cli(dir, db, {"wait", "wc-1", "--timeout", "300ms"});
    CHECK(wait.code == 3);
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
    // An approval waits for its decision: the worker holds its lease.
    REQUIRE(durable_cli(dir, db, {"start", "approval", "--id", "held", "--input", R"({"request_id":"h"})"}).code == 0);
    Json lease;
    for (int i = 0; i < 200 && lease.is_null(); ++i) {
        auto leases = durable_cli(dir, db, {"leases", "--json"});
        REQUIRE(leases.code == 0);
        for (const auto& l : Json::parse(leases.stdout_text())) {
            if (l["instance"] == "held") lease = l;
        }
        if (lease.is_null()) std::this_thread::sleep_for(20ms);
    }
    REQUIRE(lease.is_object());
    CHECK(lease["owner"] == "cli-worker");
    CHECK(lease["name"] == "approval");
    CHECK(lease["expired"] == false);
    CHECK(lease["expires_at_ms"].get<std::int64_t>() > 0);
    auto table = durable_cli(dir, db, {"leases"});
    CHECK(table.code == 0);
    CHECK(table.out_has("held"));
    CHECK(table.out_has("cli-worker"));
    CHECK(table.err_has("0 expired"));
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

TEST_CASE("split workers: --only orchestrations and --only activities run an instance together, hosts shows who runs "
          "what, an instance nobody runs says why it waits") {
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

TEST_CASE("start --id '' is a usage error and creates nothing") {
    TempDir dir;
    auto db = dir.file("cli.db");
    auto r = durable_cli(dir, db, {"start", "word_count", "--id", ""});
    CHECK(r.code == 2);
    CHECK(r.err_has("--id is empty"));
    CHECK(r.out.empty());
    CHECK_FALSE(std::filesystem::exists(db));
}

TEST_CASE("start --if-exists: return says so, fail refuses, restart starts a finished instance anew") {
    TempDir dir;
    auto db = dir.file("cli.db");
    REQUIRE(durable_cli(dir, db, {"start", "word_count", "--id", "w", "--input", R"({"documents":1})"}).code == 0);

    auto again = durable_cli(dir, db, {"start", "word_count", "--id", "w", "--input", R"({"documents":2})"});
    CHECK(again.code == 0);
    CHECK(again.out == std::vector<std::string>{"w"});
    CHECK(again.err_has("instance 'w' exists already (Pending): returning it; the input given was not used"));
    auto fail = durable_cli(dir, db, {"start", "word_count", "--id", "w", "--if-exists", "fail"});
    CHECK(fail.code == 1);
    CHECK(fail.err_has("instance 'w' exists already"));
    auto running = durable_cli(dir, db, {"start", "word_count", "--id", "w", "--if-exists", "restart"});
    CHECK(running.code == 1);
    CHECK(running.err_has("only a finished instance can be restarted"));
    CHECK(durable_cli(dir, db, {"start", "word_count", "--id", "w", "--if-exists", "sometimes"}).code == 2);
    auto state = Json::parse(durable_cli(dir, db, {"status", "w", "--json"}).stdout_text());
    CHECK(state["input"]["documents"] == 1);  // none of the above changed it

    Worker worker(dir, db, "reuse-worker");
    REQUIRE(durable_cli(dir, db, {"wait", "w", "--timeout", "30s"}).code == 0);
    auto restarted = durable_cli(dir, db, {"start", "word_count", "--id", "w", "--input", R"({"documents":3})",
                                           "--if-exists", "restart", "--wait", "--json", "--timeout", "30s"});
    CHECK(restarted.code == 0);
    CHECK(restarted.err_has("instance 'w' had finished: started anew"));
    std::string text;
    for (std::size_t i = 1; i < restarted.out.size(); ++i) text += restarted.out[i];
    auto j = Json::parse(text);
    CHECK(j["status"] == "Completed");
    CHECK(j["input"]["documents"] == 3);
}

TEST_CASE("--input-file, --input - and raise --data-file / --data - carry payloads larger than one argument") {
    TempDir dir;
    auto db = dir.file("cli.db");
    // Linux caps one argument at 128 KiB: this input cannot be given inline at all.
    std::string blob(200'000, 'x');
    auto big = dir.file("big.json");
    write_file(big, Json{{"blob", blob}}.dump());

    auto from_file = durable_cli(dir, db, {"start", "ingest", "--force", "--id", "f", "--input-file", big});
    REQUIRE(from_file.code == 0);
    auto f = Json::parse(durable_cli(dir, db, {"status", "f", "--json"}).stdout_text());
    CHECK(f["input"]["blob"].get<std::string>().size() == blob.size());

    auto from_stdin = durable_with_stdin(dir, db, {"start", "ingest", "--force", "--id", "s", "--input", "-"}, big);
    REQUIRE(from_stdin.code == 0);
    auto st = Json::parse(durable_cli(dir, db, {"status", "s", "--json"}).stdout_text());
    CHECK(st["input"]["blob"].get<std::string>().size() == blob.size());

    auto both = durable_cli(dir, db, {"start", "ingest", "--force", "--input", "{}", "--input-file", big});
    CHECK(both.code == 2);
    CHECK(both.err_has("either --input or --input-file"));
    auto missing = durable_cli(dir, db, {"start", "ingest", "--force", "--input-file", dir.file("nope.json")});
    CHECK(missing.code == 2);
    CHECK(missing.err_has("nope.json' cannot be read"));
    auto empty = dir.file("empty.json");
    write_file(empty, "");
    auto nothing = durable_with_stdin(dir, db, {"start", "ingest", "--force", "--input", "-"}, empty);
    CHECK(nothing.code == 2);
    CHECK(nothing.err_has("is empty"));

    // raise: an approval decided with a payload from a file, another from standard input.
    Worker worker(dir, db, "payload-worker");
    REQUIRE(durable_cli(dir, db, {"start", "approval", "--id", "ap-f", "--input", R"({"request_id":"f"})"}).code == 0);
    REQUIRE(durable_cli(dir, db, {"start", "approval", "--id", "ap-s", "--input", R"({"request_id":"s"})"}).code == 0);
    auto data = dir.file("data.json");
    write_file(data, R"({"by": "a file"})");
    CHECK(durable_cli(dir, db, {"raise", "ap-f", "approved", "--data-file", data}).code == 0);
    auto by_stdin = dir.file("stdin.json");
    write_file(by_stdin, R"({"by": "stdin"})");
    CHECK(durable_with_stdin(dir, db, {"raise", "ap-s", "approved", "--data", "-"}, by_stdin).code == 0);
    auto done_f = durable_cli(dir, db, {"wait", "ap-f", "--timeout", "30s", "--json"});
    REQUIRE(done_f.code == 0);
    CHECK(Json::parse(done_f.stdout_text())["output"]["decided_by"] == "a file");
    auto done_s = durable_cli(dir, db, {"wait", "ap-s", "--timeout", "30s", "--json"});
    REQUIRE(done_s.code == 0);
    CHECK(Json::parse(done_s.stdout_text())["output"]["decided_by"] == "stdin");
    CHECK(durable_cli(dir, db, {"raise", "ap-f", "approved", "--data", "{}", "--data-file", data}).code == 2);
}

TEST_CASE("worker and serve refuse a --poll that would spin a core") {
    TempDir dir;
    auto db = dir.file("cli.db");
    // serve took its host settings unchecked until both commands shared one parser.
    std::vector<std::string> commands{"worker"};
    if (durable_cli(dir, db, {"serve", "--help"}, 10s).code == 0) commands.push_back("serve");
    for (const auto& command : commands) {
        for (const char* poll : {"0s", "1ms"}) {
            auto r = durable_cli(dir, db, {command, "--poll", poll}, 10s);
            CHECK_MESSAGE(r.code == 2, command);
            CHECK(r.err_has("--poll must be at least 5ms"));
        }
    }
    CHECK_FALSE(std::filesystem::exists(db));
}

TEST_CASE("--db naming a directory says so") {
    TempDir dir;
    for (const char* sub : {"start", "list"}) {
        std::vector<std::string> args{sub};
        if (std::string(sub) == "start") args.push_back("word_count");
        auto r = durable_cli(dir, dir.path().string(), args);
        CHECK(r.code == 2);
        CHECK_MESSAGE(r.err_has("is a directory; give the path of a database file"), r.err);
        CHECK_FALSE(r.err_has("disk I/O error"));
    }
}

TEST_CASE("a SQLite database of another program is refused and left exactly as it was") {
    TempDir dir;
    auto db = dir.file("other.db");
    {
        SQLite::Database other(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        other.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
        other.exec("INSERT INTO customers (name) VALUES ('ada')");
    }
    auto before = file_bytes(db);
    for (std::vector<std::string> args : {std::vector<std::string>{"start", "word_count", "--id", "x"},
                                          std::vector<std::string>{"worker"}, std::vector<std::string>{"list"}}) {
        auto r = durable_cli(dir, db, args, 20s);
        CHECK(r.code == 1);
        CHECK_MESSAGE(r.err_has("is a SQLite database of another program (it holds customers"), r.err);
    }
    CHECK(file_bytes(db) == before);  // not a byte changed: no tables added, still in rollback-journal mode
    CHECK_FALSE(std::filesystem::exists(db + "-wal"));
}

TEST_CASE("in a directory it cannot write, the reading commands open the database read-only") {
    TempDir dir;
    auto sub = dir.path() / "ro";
    std::filesystem::create_directory(sub);
    auto db = (sub / "cli.db").string();
    REQUIRE(durable_cli(dir, db, {"start", "word_count", "--id", "ro-1", "--input", R"({"documents":1})"}).code == 0);
    // Readable by everyone, writable by no one but its owner; run as another user when root
    // (whom permissions do not bind), else take the write permission from ourselves.
    ::chmod(dir.path().c_str(), 0755);
    std::vector<std::string> prefix;
    if (::geteuid() == 0) {
        ::chmod(sub.c_str(), 0755);
        ::chmod(db.c_str(), 0644);
        prefix = {"--reuid=65534", "--regid=65534", "--clear-groups", kDurable};
    } else {
        ::chmod(sub.c_str(), 0555);
    }
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--db", db});
        if (prefix.empty()) return run_program(dir, kDurable, args);
        args.insert(args.begin(), prefix.begin(), prefix.end());
        return run_program(dir, "/usr/bin/setpriv", args);
    };
    auto status = run({"status", "ro-1"});
    CHECK_MESSAGE(status.code == 0, status.err);
    CHECK(status.out_has("status:      Pending"));
    CHECK(run({"list"}).out_has("ro-1"));
    CHECK(run({"history", "ro-1"}).code == 0);
    CHECK(run({"hosts"}).code == 0);
    auto write = run({"start", "word_count"});
    CHECK(write.code == 1);
    CHECK(write.err_has("read-only"));
    ::chmod(sub.c_str(), 0755);
}

TEST_CASE("ids, names and events that are not UTF-8 are usage errors naming the argument") {
    TempDir dir;
    auto db = dir.file("cli.db");
    const std::string bad = "caf\xC3";  // cut in the middle of a two-byte sequence
    auto start = durable_cli(dir, db, {"start", "word_count", "--id", bad});
    CHECK(start.code == 2);
    CHECK(start.err_has("--id is not valid UTF-8 (byte 3 is 0xC3)"));
    CHECK_FALSE(start.err_has("json.exception"));
    REQUIRE(durable_cli(dir, db, {"start", "word_count", "--id", "u"}).code == 0);
    auto raise = durable_cli(dir, db, {"raise", "u", "ok\xFF"});
    CHECK(raise.code == 2);
    CHECK(raise.err_has("the EVENT name is not valid UTF-8"));
    auto status = durable_cli(dir, db, {"status", bad});
    CHECK(status.code == 2);
    CHECK(status.err_has("the instance ID is not valid UTF-8"));
    auto reason = durable_cli(dir, db, {"terminate", "u", "--reason", "\xE2\x82"});
    CHECK(reason.code == 2);
    CHECK(reason.err_has("--reason is not valid UTF-8"));
}

TEST_CASE("exit codes: --version, an unknown subcommand named, a timed-out wait, history --follow's timeout") {
    TempDir dir;
    auto db = dir.file("cli.db");
    auto version = run_program(dir, kDurable, {"--version"});
    CHECK(version.code == 0);
    CHECK(version.out_has("durable 0."));
    auto unknown = durable_cli(dir, db, {"frobnicate", "now"});
    CHECK(unknown.code == 2);
    CHECK(unknown.err_has("unknown subcommand 'frobnicate'"));
    CHECK(unknown.err_has("start, status"));
    // Argument errors the library finds are usage errors too.
    CHECK(durable_cli(dir, db, {"start", "ingest", "--force", "--input", Json{{"blob", std::string(100'000, 'x')}}.dump(),
                                "--id", "ok"})
              .code == 0);
    auto oversized = durable_cli(dir, db, {"start", "ingest", "--force", "--input-file", [&] {
                                               auto p = dir.file("huge.json");
                                               write_file(p, Json{{"blob", std::string(300'000, 'x')}}.dump());
                                               return p;
                                           }()});
    CHECK(oversized.code == 2);
    CHECK(oversized.err_has("over the"));

    REQUIRE(durable_cli(dir, db, {"start", "word_count", "--id", "slow"}).code == 0);  // no worker: stays Pending
    auto timed_out = durable_cli(dir, db, {"start", "word_count", "--id", "slow2", "--wait", "--timeout", "200ms"});
    CHECK(timed_out.code == 3);
    auto wait = durable_cli(dir, db, {"wait", "slow", "--timeout", "200ms"});
    CHECK(wait.code == 3);
    auto follow = durable_cli(dir, db, {"history", "slow", "--follow", "--timeout", "200ms"});
    CHECK(follow.code == 3);
    CHECK(follow.err_has("stopped following 'slow' after --timeout 200ms: it is still Pending"));
}

TEST_CASE("the README shows every subcommand and every flag the binary has") {
    TempDir dir;
    std::string readme = durable::test::read_text(std::string(DURABLE_SOURCE_DIR) + "/README.md");
    REQUIRE(!readme.empty());
    auto help = run_program(dir, kDurable, {"--help"});
    std::set<std::string> subcommands;
    bool in_list = false;
    for (const auto& line : help.out) {
        if (line.rfind("Subcommands:", 0) == 0) {
            in_list = true;
            continue;
        }
        std::smatch m;
        if (in_list && std::regex_search(line, m, std::regex("^  ([a-z]+)\\s"))) subcommands.insert(m[1]);
    }
    REQUIRE(subcommands.size() >= 10);
    std::regex flag("(--[a-z][a-z-]+)");
    for (const auto& sub : subcommands) {
        CHECK_MESSAGE(readme.find(sub + " ") != std::string::npos, "README lacks subcommand ", sub);
        auto sub_help = run_program(dir, kDurable, {sub, "--help"});
        for (const auto& line : sub_help.out) {
            for (std::sregex_iterator it(line.begin(), line.end(), flag), end; it != end; ++it) {
                std::string f = (*it)[1];
                if (f == "--help" || f == "--exit-with-parent") continue;
                CHECK_MESSAGE(readme.find(f) != std::string::npos, "README lacks ", sub, " ", f);
            }
        }
    }
    CHECK(readme.find("--version") != std::string::npos);
}
