// cli/common.hpp — what every `durable` subcommand shares: global options, how a parsed
// subcommand runs, argument parsing (durations, JSON, statuses), opening the database, and
// formatting times and JSON for people.
//
// Exit codes, for every subcommand: 0 ok; 1 the operation failed (unknown instance, database
// locked, the instance failed or was terminated); 2 usage error (bad arguments, bad JSON,
// unknown orchestration name or subcommand); 3 a wait ran out of time with the instance still
// unfinished (`wait`, `start --wait`, `history --follow`). Errors go to stderr as
// "durable: error: <what was wrong>".
#pragma once

#include <csignal>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <durable/durable.hpp>

namespace durable::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTimedOut = 3;

// A mistake in the command line that the CLI found itself: exit code 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An operation that did not succeed, with its message already written for people: exit code 1.
class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Options of the `durable` command itself.
struct GlobalOptions {
    std::string db = "durable.db";  // a SQLite file, or a postgresql:// URL
    int wait_for_db_s = 0;            // PostgreSQL: how long to wait for a server that is down
    std::string argv0;  // how the program was invoked (for the demo's worker processes)
};

// The subcommands parsed so far and what each does; main() runs the one that was given.
class Commands {
public:
    using Handler = std::function<int()>;
    // Registers `run` as what `sub` does when it is on the command line.
    void add(CLI::App* sub, Handler run) { entries_.push_back({sub, std::move(run)}); }
    // Runs the handler of the parsed subcommand; returns its exit code.
    int run_parsed() const;

private:
    struct Entry {
        CLI::App* app;
        Handler run;
    };
    std::vector<Entry> entries_;
};

// Each group of subcommands adds itself (one file each).
void add_instance_commands(CLI::App& app, GlobalOptions& global, Commands& commands);   // start ... purge
void add_history_command(CLI::App& app, GlobalOptions& global, Commands& commands);     // history
void add_worker_command(CLI::App& app, GlobalOptions& global, Commands& commands);      // worker
void add_cluster_commands(CLI::App& app, GlobalOptions& global, Commands& commands);    // hosts, leases, metrics
void add_serve_command(CLI::App& app, GlobalOptions& global, Commands& commands);       // serve (gRPC)
void add_demo_command(CLI::App& app, GlobalOptions& global, Commands& commands);        // demo
void add_watch_commands(CLI::App& app, GlobalOptions& global, Commands& commands);      // watch, audit
void add_schedule_commands(CLI::App& app, GlobalOptions& global, Commands& commands);   // schedule ...

// ---- parsing arguments ----

// "500ms", "10s", "2m", "1h", "7d" (also "1.5s"); throws UsageError naming `what` otherwise.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what);
// Parses `text` as JSON; on a syntax error throws UsageError with the byte position (and,
// for `inline_text` given on the command line, a hint on quoting strings).
Json parse_json_arg(const std::string& text, std::string_view what, bool inline_text = true);
// A status name, any case ("completed", "Completed"); throws UsageError listing the valid ones.
Status parse_status(std::string_view text);
// Each entry may itself be a comma-separated list.
std::vector<Status> parse_statuses(const std::vector<std::string>& texts);
// Throws UsageError naming `what` when `text` is not valid UTF-8 (ids and names end up in
// JSON, which holds only UTF-8).
void require_utf8(std::string_view text, std::string_view what);
// A JSON payload given inline (`text`, where "-" means: read standard input) or in a file
// (`file`); nullopt when neither was given. `text_flag` / `file_flag` name the options in
// errors. Throws UsageError when both are given, the file cannot be read or the JSON is bad.
std::optional<Json> read_json_payload(const std::optional<std::string>& text, const std::optional<std::string>& file,
                                      std::string_view text_flag, std::string_view file_flag);

// ---- the database ----

// Opens the database at global.db. With `must_exist`, a missing file is a Failure naming it
// (reading commands should not create empty databases); `read_only` opens for inspection.
// A --db that names a directory is a UsageError.
Database open_database(const GlobalOptions& global, bool must_exist, bool read_only = false);

// The settings every long-running host command (`worker`, `serve`) shares, checked: durations
// parsed with their minimums (a shorter --poll spins a core), thread counts >= 1, the log
// level applied. Usage errors name the flag.
struct HostCommandArgs {
    std::string host_id, lease, poll, log_level;
    int threads = 0, episode_threads = 0;
};
HostOptions host_options_from(const HostCommandArgs& args);
// Blocks SIGINT and SIGTERM in the calling thread (threads started later inherit the mask) and
// returns the set, for the main thread to sigwait on.
sigset_t block_stop_signals();
// The names of the orchestrations this build of durable knows (the examples).
std::vector<std::string> known_orchestrations();

// ---- formatting ----

// Local time with milliseconds: "2026-01-31 14:05:09.123".
std::string format_time(std::int64_t ms_since_epoch);
// Local time of day with milliseconds ("HH:MM:SS.mmm"); blanks of the same width for 0.
std::string format_clock(std::int64_t ms_since_epoch);
// Milliseconds as "850ms", "3.2s", "4m05s", "2h10m".
std::string format_duration(std::int64_t ms);
// "3.2s ago" / "in 1.5s" relative to now.
std::string format_relative(std::int64_t ms_since_epoch, std::int64_t now_ms);
// Compact JSON, cut to `max` characters with "…" when longer.
std::string brief_json(const Json& value, std::size_t max = 120);
// Milliseconds since the epoch, now.
std::int64_t now_ms();
// InstanceState as JSON (for --json output).
Json state_to_json(const InstanceState& s);
// Pads or cuts `text` to `width` columns.
std::string column(std::string_view text, std::size_t width);

}  // namespace durable::cli
