// `durable demo` end to end in its short mode: worker processes, one SIGKILLed midway,
// takeovers, every instance in its expected final state, exit code 0. And the demo's refusal
// to replace a database it did not make.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using durable::test::Process;
using durable::test::TempDir;

namespace {

const std::string kDurable = std::string(DURABLE_BIN_DIR) + "/durable";

struct Run {
    int code = -1;
    std::string out, err;
};

// Runs `durable args...` to the end, bounded by `timeout`.
Run run_durable(const TempDir& dir, const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
    static int counter = 0;
    std::string err_path = dir.file("demo-stderr-" + std::to_string(++counter) + ".txt");
    Process p(kDurable, args, {err_path});
    auto f = durable::test::read_to_end(p, timeout);
    Run r;
    for (const auto& l : f.lines) r.out += l + "\n";
    if (!f.code) FAIL("`durable demo` did not finish within ", timeout.count(), " ms; output so far:\n", r.out);
    r.code = *f.code;
    r.err = durable::test::read_text(err_path);
    return r;
}

const std::vector<std::string> kShortDemo = {"demo",   "--instances", "60",  "--lease",
                                             "1s",     "--ramp",      "1s",  "--approval-timeout",
                                             "500ms",  "--timeout",   "120s"};

}  // namespace

TEST_CASE("durable demo (short mode) kills a worker, finishes every instance as expected and exits 0") {
    TempDir dir;
    auto db = dir.file("demo.db");
    std::vector<std::string> args = {"--db", db};
    args.insert(args.end(), kShortDemo.begin(), kShortDemo.end());
    auto r = run_durable(dir, args, 240s);
    INFO("stdout:\n", r.out, "\nstderr:\n", r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find("** SIGKILL worker-") != std::string::npos);
    CHECK(r.out.find("OK: every instance reached its expected final state") != std::string::npos);
    CHECK(r.out.find("failed-then-compensated sagas:") != std::string::npos);
    CHECK(r.out.find("killed by signal 9") != std::string::npos);
    CHECK(std::filesystem::exists(db + ".worker-1.log"));

    // A second run replaces the file the first one made, without --fresh.
    auto again = run_durable(dir, args, 240s);
    INFO("second run:\n", again.out, again.err);
    CHECK(again.code == 0);
}

TEST_CASE("durable demo refuses to replace a database it did not make, unless --fresh") {
    TempDir dir;
    auto db = dir.file("mine.db");
    auto started = run_durable(dir, {"--db", db, "start", "word_count", "--id", "precious"}, 60s);
    REQUIRE(started.code == 0);
    auto refused = run_durable(dir, {"--db", db, "demo", "--instances", "5"}, 60s);
    CHECK(refused.code == 1);
    CHECK(refused.err.find("holds instances the demo did not make (e.g. 'precious')") != std::string::npos);
    CHECK(refused.err.find("--fresh") != std::string::npos);
    CHECK(run_durable(dir, {"--db", db, "status", "precious"}, 60s).code == 0);  // untouched

    std::ofstream(dir.file("notes.txt")) << "not a database";
    auto not_db = run_durable(dir, {"--db", dir.file("notes.txt"), "demo"}, 60s);
    CHECK(not_db.code == 1);
    CHECK(not_db.err.find("is not a durable database") != std::string::npos);
}
