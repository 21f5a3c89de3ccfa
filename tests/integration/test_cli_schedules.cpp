// `durable schedule ...` against a real database file: create (with errors that name the cron
// field, the overlap policy or the orchestration), list, get, pause, resume, trigger (run by a
// real worker process) and delete, with their exit codes (0 ok, 1 failed, 2 usage error).
#include <doctest/doctest.h>

#include <csignal>

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
    std::string out, err;
    bool out_has(const std::string& s) const { return out.find(s) != std::string::npos; }
    bool err_has(const std::string& s) const { return err.find(s) != std::string::npos; }
};

Result cli(const TempDir& dir, const std::string& db, std::vector<std::string> args) {
    static int counter = 0;
    std::string err_path = dir.file("schedule-stderr-" + std::to_string(++counter) + ".txt");
    args.insert(args.begin(), {"--db", db});
    Process p(kDurable, args, {err_path});
    auto f = durable::test::read_to_end(p, 60s);
    if (!f.code) FAIL("`durable` did not finish within 60 s");
    Result r{*f.code, {}, durable::test::read_text(err_path)};
    for (const auto& l : f.lines) r.out += l + "\n";
    return r;
}

const std::string kOrder = R"({"order_id":"S","items":[{"sku":"book","quantity":1,"price":10}]})";

}  // namespace

TEST_CASE("durable schedule create, list, get, pause, resume, trigger and delete") {
    TempDir dir;
    auto db = dir.file("schedules.db");

    // Usage errors name what is wrong and create nothing.
    auto bad_cron = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 32 * *", "--orchestration",
                                  "order_pipeline"});
    CHECK(bad_cron.code == 2);
    CHECK(bad_cron.err_has("day-of-month field"));
    CHECK(bad_cron.err_has("1-31"));
    auto fields = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * *", "--orchestration", "order_pipeline"});
    CHECK(fields.code == 2);
    CHECK(fields.err_has("has 4 fields"));
    auto overlap = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * * *", "--orchestration",
                                 "order_pipeline", "--overlap", "sometimes"});
    CHECK(overlap.code == 2);
    CHECK(overlap.err_has("--overlap 'sometimes' is not one of skip, buffer_one, allow_all"));
    auto unknown = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * * *", "--orchestration", "nope"});
    CHECK(unknown.code == 2);
    CHECK(unknown.err_has("no orchestration named 'nope'"));
    auto window = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * * *", "--orchestration",
                                "order_pipeline", "--catchup-window", "soon"});
    CHECK(window.code == 2);
    CHECK(window.err_has("--catchup-window"));

    auto created = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * * MON-FRI", "--orchestration",
                                 "order_pipeline", "--input", kOrder, "--overlap", "buffer_one", "--jitter", "30s"});
    REQUIRE(created.code == 0);
    CHECK(created.out_has("id:             nightly"));
    CHECK(created.out_has("cron:           0 2 * * MON-FRI (UTC)"));
    CHECK(created.out_has("overlap:        buffer_one"));
    CHECK(created.out_has("state:          active"));
    CHECK(created.out_has("T02:00:00Z"));
    CHECK(created.err_has("no host is running"));
    // The same definition again is an idempotent retry; another one is refused.
    CHECK(cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 2 * * MON-FRI", "--orchestration",
                        "order_pipeline", "--input", kOrder, "--overlap", "buffer_one", "--jitter", "30s"})
              .code == 0);
    auto clash = cli(dir, db, {"schedule", "create", "nightly", "--cron", "0 3 * * *", "--orchestration",
                               "order_pipeline"});
    CHECK(clash.code == 2);
    CHECK(clash.err_has("exists already with another definition"));

    auto list = cli(dir, db, {"schedule", "list"});
    CHECK(list.code == 0);
    CHECK(list.out_has("nightly"));
    CHECK(list.out_has("0 2 * * MON-FRI"));
    CHECK(list.out_has("active"));
    auto got = cli(dir, db, {"schedule", "get", "nightly", "--json"});
    REQUIRE(got.code == 0);
    auto j = Json::parse(got.out);
    CHECK(j["overlap"] == "buffer_one");
    CHECK(j["jitter_ms"] == 30'000);
    CHECK(j["catchup_window_ms"] == 3'600'000);
    CHECK(j["input"]["order_id"] == "S");
    CHECK(j["fired"] == 0);
    CHECK(j["next_fire"].get<std::string>().find("T02:00:00Z") != std::string::npos);

    auto paused = cli(dir, db, {"schedule", "pause", "nightly", "--reason", "quarter close"});
    CHECK(paused.code == 0);
    CHECK(paused.out_has("paused"));
    auto after_pause = Json::parse(cli(dir, db, {"schedule", "get", "nightly", "--json"}).out);
    CHECK(after_pause["paused"] == true);
    CHECK(after_pause["note"] == "quarter close");
    CHECK(after_pause["next_fire"].is_null());
    CHECK(cli(dir, db, {"schedule", "list"}).out_has("paused"));

    // Trigger runs it now, even paused; a worker takes the instance.
    auto trig = cli(dir, db, {"schedule", "trigger", "nightly"});
    REQUIRE(trig.code == 0);
    auto iid = trig.out.substr(0, trig.out.find('\n'));
    CHECK(iid.rfind("nightly@trigger-", 0) == 0);
    {
        Process worker(kDurable, {"--db", db, "worker", "--host-id", "sched-worker", "--lease", "2s", "--poll", "20ms"},
                       {dir.file("worker.log")});
        auto waited = cli(dir, db, {"wait", iid, "--timeout", "30s", "--json"});
        CHECK(waited.code == 0);
        CHECK(Json::parse(waited.out)["status"] == "Completed");
        worker.signal(SIGTERM);
        worker.wait(20s);
    }
    CHECK(Json::parse(cli(dir, db, {"schedule", "get", "nightly", "--json"}).out)["fired"] == 1);

    auto resumed = cli(dir, db, {"schedule", "resume", "nightly"});
    CHECK(resumed.code == 0);
    CHECK(resumed.out_has("active; next fire"));
    CHECK(Json::parse(cli(dir, db, {"schedule", "get", "nightly", "--json"}).out)["paused"] == false);

    CHECK(cli(dir, db, {"schedule", "delete", "nightly"}).code == 0);
    auto again = cli(dir, db, {"schedule", "delete", "nightly"});
    CHECK(again.code == 1);
    CHECK(again.err_has("no schedule 'nightly'"));
    CHECK(cli(dir, db, {"schedule", "get", "nightly"}).code == 1);
    CHECK(cli(dir, db, {"schedule", "pause", "nightly"}).code == 1);
    CHECK(cli(dir, db, {"schedule", "list"}).out_has("no schedules"));
    CHECK(cli(dir, db, {"status", iid}).code == 0);  // its instances stay

    auto help = cli(dir, db, {"schedule", "--help"});
    CHECK(help.code == 0);
    for (const char* sub : {"create", "list", "get", "pause", "resume", "trigger", "delete"}) {
        CHECK_MESSAGE(help.out_has(sub), "schedule --help lacks ", sub);
    }
    auto none = cli(dir, db, {"schedule"});
    CHECK(none.code == 2);
}
