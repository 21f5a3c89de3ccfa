// The programs in examples/, run as a newcomer would run them: each must exit 0 and print
// what its comment promises.
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using durable::test::Process;
using durable::test::TempDir;

namespace {

std::string program(const std::string& name) {
    return std::string(DURABLE_BIN_DIR) + "/" + name;
}

struct Output {
    int code = -1;
    std::vector<std::string> lines;
    std::string err;
    std::string text() const {
        std::string s;
        for (const auto& l : lines) s += l + "\n";
        return s;
    }
    bool has(const std::string& needle) const { return text().find(needle) != std::string::npos; }
};

// Reads the child's stdout to the end (after what `out` holds already) and reaps it, all
// within `timeout`.
Output finish(Process& p, const std::string& err_path, Output out, std::chrono::milliseconds timeout) {
    auto f = durable::test::read_to_end(p, timeout);
    for (auto& l : f.lines) out.lines.push_back(std::move(l));
    if (!f.code) FAIL("the example did not finish within ", timeout.count(), " ms; stdout so far:\n", out.text());
    out.code = *f.code;
    out.err = durable::test::read_text(err_path);
    return out;
}

Output run(const TempDir& dir, const std::string& name, const std::vector<std::string>& args,
           std::chrono::milliseconds timeout = 60s) {
    std::string err = dir.file(name + ".stderr");
    Process p(program(name), args, {err});
    return finish(p, err, {}, timeout);
}

}  // namespace

TEST_CASE("example hello registers, schedules and waits in one process, and is idempotent on rerun") {
    TempDir dir;
    auto db = dir.file("hello.db");
    auto first = run(dir, "hello", {db});
    INFO(first.text(), first.err);
    CHECK(first.code == 0);
    CHECK(first.has("instance hello-1 completed:"));
    CHECK(first.has("  Hello, Tokyo!"));
    CHECK(first.has("  Hello, Seattle!"));
    CHECK(first.has("  Hello, London!"));
    auto second = run(dir, "hello", {db});
    CHECK(second.code == 0);
    // The same result, without log lines (spdlog's default logger writes to stdout, and the
    // first run also logs the database's creation).
    auto results = [](const Output& o) {
        std::vector<std::string> out;
        for (const auto& l : o.lines) {
            if (l.rfind("[", 0) != 0) out.push_back(l);
        }
        return out;
    };
    CHECK(results(second) == results(first));
}

TEST_CASE("example worker_and_client runs orders in a forked worker process scheduled by a client") {
    TempDir dir;
    auto out = run(dir, "worker_and_client", {dir.file("wc.db"), "3"});
    INFO(out.text(), out.err);
    CHECK(out.code == 0);
    std::regex line(R"(wc-order-(\d): shipped, ([0-9.]+) charged, tracking TRK-[0-9a-f]{8} \(run by worker-(\d+)\))");
    int shipped = 0;
    for (const auto& l : out.lines) {
        std::smatch m;
        if (!std::regex_match(l, m, line)) continue;
        ++shipped;
        CHECK(std::stod(m[2].str()) == doctest::Approx(12.5 * std::stoi(m[1].str())));
    }
    CHECK(shipped == 3);
    CHECK(out.has("worker stopped; done"));
}

TEST_CASE("example approval is decided by `durable raise` from another process") {
    TempDir dir;
    auto db = dir.file("approval.db");
    std::string err = dir.file("approval.stderr");
    Process p(program("approval"), {"--db", db}, {err});
    // It prints the command that decides it; run that command (with our own payload).
    auto hint = p.wait_for_prefix("  durable --db", 30s);
    REQUIRE(hint);
    std::smatch m;
    REQUIRE(std::regex_search(*hint, m, std::regex(R"(raise (approval-\d+) approved)")));
    std::string id = m[1].str();

    std::string raise_err = dir.file("raise.stderr");
    Process raise(program("durable"), {"--db", db, "raise", id, "approved", "--data", R"({"by":"test"})"},
                  {raise_err});
    auto code = raise.wait(30s);
    REQUIRE(code);
    CHECK_MESSAGE(*code == 0, durable::test::read_text(raise_err));

    auto out = finish(p, err, {}, 60s);
    INFO(out.text(), out.err);
    CHECK(out.code == 0);
    CHECK(out.has("outcome: approved, by test"));
}

TEST_CASE("example approval --auto-approve decides itself") {
    TempDir dir;
    auto out = run(dir, "approval", {"--db", dir.file("approval.db"), "--auto-approve"});
    INFO(out.text(), out.err);
    CHECK(out.code == 0);
    CHECK(out.has("is waiting for a decision"));
    CHECK(out.has("outcome: approved, by auto-approve"));
}

TEST_CASE("example approval escalates and expires when nobody answers") {
    TempDir dir;
    auto out = run(dir, "approval", {"--db", dir.file("approval.db"), "--timeout-ms", "200"});
    INFO(out.text(), out.err);
    CHECK(out.code == 0);
    CHECK(out.has("outcome: expired (after escalation)"));
}
