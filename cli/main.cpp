// durable — the command line: inspect and steer instances in a durable database, run a
// worker, or watch the multi-host demo.
//
//   durable [--db FILE] <subcommand> ...      (default FILE: durable.db in this directory)
//
// Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 a wait timed out; see
// cli/common.hpp.
#include <cstdio>
#include <string_view>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/common.hpp"

namespace {

int report(int code, const std::string& message) {
    fmt::print(stderr, "durable: error: {}\n", message);
    return code;
}

// The first word of the command line that is neither an option nor an option's value: the
// subcommand the user meant ("" if none).
std::string first_word(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--db") {
            ++i;  // its value
            continue;
        }
        if (!arg.empty() && arg.front() == '-') continue;
        return std::string(arg);
    }
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    using namespace durable::cli;
    GlobalOptions global;
    global.argv0 = argc > 0 ? argv[0] : "durable";

    CLI::App app{"durable: durable orchestrations on one SQLite file or a PostgreSQL database.\n"
                 "Start with `durable demo`, then look around with `durable list` and `durable history ID`.",
                 "durable"};
    app.add_option("--db", global.db,
                   "The database: a SQLite file, or a PostgreSQL URL (postgresql://user@host:port/dbname) that hosts "
                   "on many machines share")
        ->capture_default_str();
    app.add_option("--wait-for-db", global.wait_for_db_s,
                   "PostgreSQL: seconds to wait for a server that is down or starting before giving up (default 0)");
    app.set_version_flag("--version", std::string("durable ") + DURABLE_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // --db may also follow the subcommand

    Commands commands;
    add_instance_commands(app, global, commands);
    add_history_command(app, global, commands);
    add_worker_command(app, global, commands);
    add_cluster_commands(app, global, commands);
    add_demo_command(app, global, commands);
    add_watch_commands(app, global, commands);
    add_schedule_commands(app, global, commands);
#ifdef DURABLE_WITH_SERVER
    add_serve_command(app, global, commands);
#endif

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        auto word = first_word(argc, argv);
        std::string names;
        bool known = false;
        for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
            names += (names.empty() ? "" : ", ") + sub->get_name();
            known = known || sub->get_name() == word;
        }
        if (!word.empty() && !known) {
            return report(kExitUsage, fmt::format("unknown subcommand '{}'; the subcommands are: {} (durable --help "
                                                  "says what each does)",
                                                  word, names));
        }
        app.exit(e);  // prints the problem and a hint to stderr
        return kExitUsage;
    }

    // Library logs (hosts starting, lease warnings) go to stderr, so stdout carries only
    // results; warnings and worse unless the worker asks for more.
    spdlog::set_default_logger(spdlog::stderr_color_mt("durable"));
    spdlog::set_level(spdlog::level::warn);
    try {
        return commands.run_parsed();
    } catch (const UsageError& e) {
        return report(kExitUsage, e.what());
    } catch (const Failure& e) {
        return report(kExitFailed, e.what());
    } catch (const durable::InstanceNotFound& e) {
        return report(kExitFailed, e.what());
    } catch (const durable::Timeout& e) {
        return report(kExitTimedOut, e.what());
    } catch (const durable::StoreError& e) {
        return report(kExitFailed, fmt::format("the database could not be used: {}", e.what()));
    } catch (const durable::Error& e) {
        return report(kExitFailed, e.what());
    } catch (const std::exception& e) {
        return report(kExitFailed, fmt::format("unexpected failure: {}", e.what()));
    }
}
