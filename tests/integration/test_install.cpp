// The install story, as a downstream user meets it: `cmake --install` this build into a
// fresh prefix, then build tests/consumer/ against that prefix, once through the exported
// CMake package (find_package(durable), with durable::postgres and durable::http) and once
// through the pkg-config file, and run it.
//
// Every command runs under `timeout`, so a hung tool fails the test instead of stalling CI.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/postgres_server.hpp"
#include "support/temp_dir.hpp"

using durable::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr int kCommandTimeoutSeconds = 240;

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Outcome {
    int code = -1;
    std::string output;
};

// Runs `command` (a shell command line) with output captured in `log`, bounded in time.
Outcome run(const std::string& command, const fs::path& log) {
    std::string line = "timeout -k 10 " + std::to_string(kCommandTimeoutSeconds) + " sh -c " + quote(command) +
                       " > " + quote(log.string()) + " 2>&1";
    int status = std::system(line.c_str());
    Outcome o;
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.output = read_file(log);
    return o;
}

#define REQUIRE_RUNS(outcome, what)                                                       \
    do {                                                                                  \
        const auto& o_ = (outcome);                                                       \
        INFO(what << " printed:\n" << o_.output);                                         \
        REQUIRE_MESSAGE(o_.code == 0, what << " failed with exit code " << o_.code);      \
    } while (false)

// Installs the build tree into `prefix` and returns the path of the installed durable.pc.
fs::path install_into(const fs::path& prefix, const fs::path& logs) {
    auto o = run(quote(DURABLE_CMAKE_COMMAND) + " --install " + quote(DURABLE_BUILD_DIR) + " --prefix " +
                     quote(prefix.string()),
                 logs / "install.log");
    REQUIRE_RUNS(o, "cmake --install");
    CHECK(fs::exists(prefix / "include" / "durable" / "durable.hpp"));
    fs::path pc, config, library;
    for (const auto& e : fs::recursive_directory_iterator(prefix)) {
        auto name = e.path().filename().string();
        if (name == "durable.pc") pc = e.path();
        if (name == "durableConfig.cmake") config = e.path();
        if (name.rfind("libdurable.", 0) == 0) library = e.path();
    }
    CHECK_MESSAGE(!config.empty(), "no durableConfig.cmake under " << prefix);
    CHECK_MESSAGE(!library.empty(), "no libdurable under " << prefix);
    REQUIRE_MESSAGE(!pc.empty(), "no durable.pc under " << prefix);
    return pc;
}

fs::path consumer_source() {
    return fs::path(DURABLE_SOURCE_DIR) / "tests" / "consumer";
}

}  // namespace

TEST_CASE("an installed durable is found with find_package and links a consumer project, with its PostgreSQL and HTTP "
          "libraries") {
    TempDir dir;
    const fs::path prefix = dir.path() / "prefix";
    const fs::path build = dir.path() / "consumer-build";
    install_into(prefix, dir.path());

    std::string flags = DURABLE_CONSUMER_FLAGS;
    auto configure = run(quote(DURABLE_CMAKE_COMMAND) + " -S " + quote(consumer_source().string()) + " -B " +
                             quote(build.string()) + " -G " + quote(DURABLE_CMAKE_GENERATOR) +
                             " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + quote(prefix.string()) +
                             " -DCMAKE_CXX_COMPILER=" + quote(DURABLE_CXX_COMPILER) + " -DCMAKE_CXX_FLAGS=" +
                             quote(flags) + " -DCMAKE_EXE_LINKER_FLAGS=" + quote(flags),
                         dir.path() / "configure.log");
    REQUIRE_RUNS(configure, "configuring the consumer");
    // It found the package we just installed, not some other durable on the machine.
    auto cache = read_file(build / "CMakeCache.txt");
    CHECK(cache.find("durable_DIR:PATH=" + prefix.string()) != std::string::npos);

    auto compile = run(quote(DURABLE_CMAKE_COMMAND) + " --build " + quote(build.string()), dir.path() / "build.log");
    REQUIRE_RUNS(compile, "building the consumer");

    auto exe = build / "durable_consumer";
    REQUIRE(fs::exists(exe));
    auto ran = run(quote(exe.string()) + " " + quote((dir.path() / "consumer.db").string()), dir.path() / "run.log");
    REQUIRE_RUNS(ran, "running the consumer");
    CHECK(ran.output.find("hello consumer") != std::string::npos);

    // durable::postgres and durable::http come with the package: a consumer linking both runs
    // on a PostgreSQL database and serves its own /readyz and /metrics.
    auto full = build / "durable_consumer_full";
    REQUIRE(fs::exists(full));
    durable::test::TestDatabase pg;
    auto on_pg = run(quote(full.string()) + " " + quote(pg.url()), dir.path() / "run-full.log");
    REQUIRE_RUNS(on_pg, "running the consumer of durable::postgres and durable::http");
    CHECK(on_pg.output.find("hello consumer on postgresql, served /readyz and /metrics") != std::string::npos);
}

TEST_CASE("the installed pkg-config file compiles and links a consumer") {
    TempDir dir;
    const fs::path prefix = dir.path() / "prefix";
    const fs::path pc = install_into(prefix, dir.path());
    const std::string env = "PKG_CONFIG_PATH=" + quote(pc.parent_path().string()) + " ";

    auto flags = run(env + "pkg-config --cflags --libs durable", dir.path() / "pkg-config.log");
    REQUIRE_RUNS(flags, "pkg-config --cflags --libs durable");
    CHECK(flags.output.find("-ldurable") != std::string::npos);
    CHECK(flags.output.find("-std=c++20") != std::string::npos);

    // The file points at the prefix it was installed into, wherever that is.
    auto variable = run(env + "pkg-config --variable=includedir durable", dir.path() / "includedir.log");
    REQUIRE_RUNS(variable, "pkg-config --variable=includedir durable");
    auto includedir = variable.output.substr(0, variable.output.find_last_not_of(" \n") + 1);
    CHECK(fs::weakly_canonical(includedir) == fs::weakly_canonical(prefix / "include"));

    const fs::path exe = dir.path() / "consumer";
    auto compile = run(quote(DURABLE_CXX_COMPILER) + " " + std::string(DURABLE_CONSUMER_FLAGS) + " -o " +
                           quote(exe.string()) + " " + quote((consumer_source() / "main.cpp").string()) + " $(" +
                           env + "pkg-config --cflags --libs durable)",
                       dir.path() / "compile.log");
    REQUIRE_RUNS(compile, "compiling the consumer with pkg-config's flags");

    auto ran = run(quote(exe.string()) + " " + quote((dir.path() / "consumer.db").string()), dir.path() / "run.log");
    REQUIRE_RUNS(ran, "running the consumer");
    CHECK(ran.output.find("hello consumer") != std::string::npos);
}
