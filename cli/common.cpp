// Shared parsing, database opening and formatting for the `durable` subcommands.
#include "cli/common.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <system_error>

#include "orchestrations/orchestrations.hpp"
#include "runtime/utf8.hpp"  // header-only: the check the Client makes, here with a usage error

namespace durable::cli {

int Commands::run_parsed() const {
    for (const auto& e : entries_) {
        if (e.app->parsed()) return e.run();
    }
    throw UsageError("no subcommand given; run `durable --help` to see them");
}

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what) {
    auto fail = [&]() -> UsageError {
        return UsageError(fmt::format("{} '{}' is not a duration; write a number and a unit, e.g. 500ms, 10s, 2m, 1h, 7d",
                                      what, text));
    };
    std::size_t split = 0;
    while (split < text.size() && (std::isdigit(static_cast<unsigned char>(text[split])) || text[split] == '.')) ++split;
    if (split == 0 || split == text.size()) throw fail();
    double number = 0;
    try {
        number = std::stod(std::string(text.substr(0, split)));
    } catch (const std::exception&) {
        throw fail();
    }
    std::string_view unit = text.substr(split);
    double factor = 0;
    if (unit == "ms") {
        factor = 1;
    } else if (unit == "s") {
        factor = 1000;
    } else if (unit == "m" || unit == "min") {
        factor = 60'000;
    } else if (unit == "h") {
        factor = 3'600'000;
    } else if (unit == "d") {
        factor = 86'400'000;
    } else {
        throw fail();
    }
    double ms = number * factor;
    if (!std::isfinite(ms) || ms > 1e15) throw fail();
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

Json parse_json_arg(const std::string& text, std::string_view what, bool inline_text) {
    try {
        return Json::parse(text);
    } catch (const Json::parse_error& e) {
        // nlohmann's message starts "[json.exception.parse_error.101] parse error at line 1,
        // column 5: ..."; keep what follows the "parse error" prefix, and name the byte.
        std::string detail = e.what();
        if (auto p = detail.find("] "); p != std::string::npos) detail = detail.substr(p + 2);
        std::string hint;
        if (inline_text && !text.empty() && text.front() != '{' && text.front() != '[' && text.front() != '"') {
            hint = fmt::format("; a string must be quoted as JSON, e.g. {} '\"{}\"'", what, text);
        }
        throw UsageError(fmt::format("{} is not valid JSON (at byte {}): {}{}", what, e.byte, detail, hint));
    }
}

Status parse_status(std::string_view text) {
    std::string lower;
    for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (Status s : {Status::Pending, Status::Running, Status::Suspended, Status::Completed, Status::Failed,
                     Status::Terminated}) {
        std::string name(to_string(s));
        std::string name_lower;
        for (char c : name) name_lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name_lower == lower) return s;
    }
    throw UsageError(fmt::format(
        "'{}' is not a status; use one of Pending, Running, Suspended, Completed, Failed, Terminated", text));
}

std::vector<Status> parse_statuses(const std::vector<std::string>& texts) {
    std::vector<Status> out;
    for (const auto& t : texts) {
        std::size_t start = 0;
        while (start <= t.size()) {
            auto comma = t.find(',', start);
            auto part = t.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!part.empty()) {
                Status s = parse_status(part);
                if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
            }
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    return out;
}

namespace {

std::string read_all(std::istream& in) {
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

void require_utf8(std::string_view text, std::string_view what) {
    auto bad = detail::first_invalid_utf8(text);
    if (bad == std::string_view::npos) return;
    throw UsageError(fmt::format("{} is not valid UTF-8 (byte {} is 0x{:02X}); ids, names and events must be UTF-8 text",
                                 what, bad, static_cast<unsigned char>(text[bad])));
}

std::optional<Json> read_json_payload(const std::optional<std::string>& text, const std::optional<std::string>& file,
                                      std::string_view text_flag, std::string_view file_flag) {
    if (text && file) throw UsageError(fmt::format("give either {} or {}, not both", text_flag, file_flag));
    if (text && *text != "-") return parse_json_arg(*text, text_flag);
    std::string content, what;
    if (text) {
        what = fmt::format("{} - (standard input)", text_flag);
        content = read_all(std::cin);
        if (std::cin.bad()) throw UsageError(fmt::format("{} could not be read", what));
    } else if (file) {
        what = fmt::format("{} '{}'", file_flag, *file);
        if (std::filesystem::is_directory(*file)) throw UsageError(fmt::format("{} is a directory, not a file", what));
        std::ifstream in(*file, std::ios::binary);
        if (!in) {
            throw UsageError(fmt::format("{} cannot be read: {}", what, std::error_code(errno, std::generic_category()).message()));
        }
        content = read_all(in);
        if (in.bad()) throw UsageError(fmt::format("{} could not be read to its end", what));
    } else {
        return std::nullopt;
    }
    if (content.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw UsageError(fmt::format("{} is empty; it must hold one JSON value (e.g. {{}} or null)", what));
    }
    return parse_json_arg(content, what, false);
}

Database open_database(const GlobalOptions& global, bool must_exist, bool read_only) {
    if (global.db.empty()) throw UsageError("--db is empty; give the path of a database file or a PostgreSQL URL");
    const bool server = Database::names_server(global.db);
    if (!server && std::filesystem::is_directory(global.db)) {
        throw UsageError(fmt::format("--db '{}' is a directory; give the path of a database file in it, e.g. --db {}",
                                     global.db, (std::filesystem::path(global.db) / "durable.db").string()));
    }
    if (must_exist && !server && !std::filesystem::exists(global.db)) {
        throw Failure(fmt::format("there is no database at '{}'; pass --db FILE, or create one with `durable start` "
                                  "or `durable worker`",
                                  global.db));
    }
    DatabaseOptions options;
    options.read_only = read_only;
    options.connect_wait = std::chrono::seconds(global.wait_for_db_s);
    return Database::open(global.db, options);
}

HostOptions host_options_from(const HostCommandArgs& a) {
    constexpr std::chrono::milliseconds kMinPoll{5};
    constexpr std::chrono::milliseconds kMinLease{100};
    HostOptions options;
    options.host_id = a.host_id;
    options.lease_duration = parse_duration(a.lease, "--lease");
    options.poll_interval = parse_duration(a.poll, "--poll");
    if (options.poll_interval < kMinPoll) {
        throw UsageError(fmt::format("--poll must be at least {}, got {}", format_duration(kMinPoll.count()),
                                     format_duration(options.poll_interval.count())));
    }
    if (options.lease_duration < kMinLease) {
        throw UsageError(fmt::format("--lease must be at least {}, got {}", format_duration(kMinLease.count()),
                                     format_duration(options.lease_duration.count())));
    }
    if (a.threads < 1) throw UsageError(fmt::format("--threads must be at least 1, got {}", a.threads));
    if (a.episode_threads < 1) {
        throw UsageError(fmt::format("--episode-threads must be at least 1, got {}", a.episode_threads));
    }
    options.activity_threads = a.threads;
    options.episode_threads = a.episode_threads;
    auto level = spdlog::level::from_str(a.log_level);
    if (level == spdlog::level::off && a.log_level != "off") {
        throw UsageError(fmt::format("--log-level '{}' is not one of trace, debug, info, warn, error, off", a.log_level));
    }
    spdlog::set_level(level);
    return options;
}

sigset_t block_stop_signals() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    return stop_signals;
}

std::vector<std::string> known_orchestrations() {
    return orchestrations::make_registry()->orchestrator_names();
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {
// Local time of `ms` in strftime's `pattern`, then ".mmm".
std::string local_time(std::int64_t ms, const char* pattern) {
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    localtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), pattern, &tm);
    return fmt::format("{}.{:03}", buf, ms % 1000);
}
}  // namespace

std::string format_time(std::int64_t ms) {
    return ms <= 0 ? "-" : local_time(ms, "%Y-%m-%d %H:%M:%S");
}

std::string format_clock(std::int64_t ms) {
    return ms <= 0 ? std::string(12, ' ') : local_time(ms, "%H:%M:%S");
}

std::string format_duration(std::int64_t ms) {
    bool negative = ms < 0;
    std::uint64_t a = static_cast<std::uint64_t>(negative ? -ms : ms);
    std::string s;
    if (a < 1000) {
        s = fmt::format("{}ms", a);
    } else if (a < 60'000) {
        s = fmt::format("{:.1f}s", static_cast<double>(a) / 1000.0);
    } else if (a < 3'600'000) {
        s = fmt::format("{}m{:02}s", a / 60'000, (a / 1000) % 60);
    } else {
        s = fmt::format("{}h{:02}m", a / 3'600'000, (a / 60'000) % 60);
    }
    return negative ? "-" + s : s;
}

std::string format_relative(std::int64_t ms, std::int64_t now) {
    if (ms <= 0) return "-";
    return ms <= now ? format_duration(now - ms) + " ago" : "in " + format_duration(ms - now);
}

std::string brief_json(const Json& value, std::size_t max) {
    std::string s = value.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (s.size() <= max) return s;
    return s.substr(0, max > 3 ? max - 3 : max) + "...";
}

Json state_to_json(const InstanceState& s) {
    Json j = {{"id", s.id},
              {"name", s.name},
              {"status", std::string(to_string(s.status))},
              {"execution_id", s.execution_id},
              {"input", s.input},
              {"output", s.output},
              {"custom_status", s.custom_status},
              {"error", s.error},
              {"created_at_ms", s.created_at_ms},
              {"updated_at_ms", s.updated_at_ms}};
    j["parent_id"] = s.parent_id ? Json(*s.parent_id) : Json();
    j["completed_at_ms"] = s.completed_at_ms ? Json(*s.completed_at_ms) : Json();
    j["lease_owner"] = s.lease_owner ? Json(*s.lease_owner) : Json();
    j["lease_expires_at_ms"] = s.lease_expires_at_ms;
    j["version"] = s.version;
    return j;
}

std::string column(std::string_view text, std::size_t width) {
    if (text.size() > width) return std::string(text.substr(0, width > 1 ? width - 1 : width)) + (width > 1 ? "~" : "");
    return std::string(text) + std::string(width - text.size(), ' ');
}

}  // namespace durable::cli
