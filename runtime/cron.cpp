// Cron expressions: parsing (errors name the field) and next-fire computation in UTC.
//
// next_after walks the calendar from the coarsest field down: a month that does not match
// skips to the next month, a day to the next day, an hour to the next hour; so a yearly
// expression costs a few dozen steps, not half a million minutes.
#include "durable/cron.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <vector>

#include "durable/errors.hpp"

namespace durable {
namespace {

using namespace std::chrono;

struct FieldSpec {
    const char* name;
    int min, max;
    const char* const* names;  // three-letter names for min.. (nullptr: none)
    int names_count;
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, nullptr, 0},
    {"hour", 0, 23, nullptr, 0},
    {"day-of-month", 1, 31, nullptr, 0},
    {"month", 1, 12, kMonthNames, 12},
    {"day-of-week", 0, 7, kDayNames, 7},
}};

constexpr const char* kOrdinal[] = {"1st", "2nd", "3rd", "4th", "5th"};

class FieldError {
public:
    std::string message;
};

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return out;
}

std::string accepted(const FieldSpec& f) {
    std::string s = fmt::format("{}-{}", f.min, f.max);
    if (f.names) s += fmt::format(" or {}-{}", f.names[0], f.names[f.names_count - 1]);
    return s;
}

int parse_value(std::string_view item, const FieldSpec& f) {
    if (item.empty()) throw FieldError{"an empty value"};
    if (std::isdigit(static_cast<unsigned char>(item.front()))) {
        int v = 0;
        for (char ch : item) {
            if (!std::isdigit(static_cast<unsigned char>(ch))) {
                throw FieldError{fmt::format("'{}' is not a number", item)};
            }
            v = v * 10 + (ch - '0');
            if (v > 1000) break;
        }
        if (v < f.min || v > f.max) {
            throw FieldError{fmt::format("{} is out of range (accepted: {})", item, accepted(f))};
        }
        return v;
    }
    if (f.names) {
        auto u = upper(item);
        for (int i = 0; i < f.names_count; ++i) {
            if (u == f.names[i]) return f.min + i;
        }
        throw FieldError{fmt::format("'{}' is not a value or a name (accepted: {})", item, accepted(f))};
    }
    throw FieldError{fmt::format("'{}' is not a number (accepted: {})", item, accepted(f))};
}

int parse_step(std::string_view s) {
    if (s.empty()) throw FieldError{"a '/' without a step after it"};
    int v = 0;
    for (char ch : s) {
        if (!std::isdigit(static_cast<unsigned char>(ch))) throw FieldError{fmt::format("step '{}' is not a number", s)};
        v = v * 10 + (ch - '0');
        if (v > 1000) break;
    }
    if (v == 0) throw FieldError{"a step of 0"};
    return v;
}

// The values of one field (indexes min..max; day-of-week 7 folded onto 0 by the caller).
std::vector<bool> parse_field(std::string_view text, const FieldSpec& f) {
    std::vector<bool> on(static_cast<std::size_t>(f.max + 1), false);
    std::size_t start = 0;
    for (;;) {
        auto comma = text.find(',', start);
        auto item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (item.empty()) throw FieldError{"an empty list item (two commas, or a comma at an end)"};
        int step = 1;
        auto slash = item.find('/');
        std::string_view range = item;
        if (slash != std::string_view::npos) {
            step = parse_step(item.substr(slash + 1));
            range = item.substr(0, slash);
        }
        int lo = 0, hi = 0;
        if (range == "*") {
            lo = f.min;
            hi = f.max;
        } else {
            auto dash = range.find('-');
            if (dash == std::string_view::npos) {
                lo = parse_value(range, f);
                // `5/20`: from 5 to the end of the field; a plain value is just itself.
                hi = slash != std::string_view::npos ? f.max : lo;
            } else {
                lo = parse_value(range.substr(0, dash), f);
                hi = parse_value(range.substr(dash + 1), f);
                if (lo > hi) {
                    throw FieldError{fmt::format("range '{}' runs backwards (write the smaller value first)", range)};
                }
            }
        }
        for (int v = lo; v <= hi; v += step) on[static_cast<std::size_t>(v)] = true;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return on;
}

std::string_view shorthand(std::string_view s) {
    if (s == "@yearly" || s == "@annually") return "0 0 1 1 *";
    if (s == "@monthly") return "0 0 1 * *";
    if (s == "@weekly") return "0 0 * * 0";
    if (s == "@daily" || s == "@midnight") return "0 0 * * *";
    if (s == "@hourly") return "0 * * * *";
    return {};
}

std::vector<std::string_view> split_fields(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
        if (i >= s.size()) break;
        std::size_t j = i;
        while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
        out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

unsigned days_in(int year, unsigned month) {
    return static_cast<unsigned>((year_month_day_last{std::chrono::year{year}, month_day_last{std::chrono::month{month}}}).day());
}

}  // namespace

CronExpression CronExpression::parse(std::string_view text) {
    CronExpression e;
    e.text_ = std::string(text);
    std::string_view body = text;
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.front()))) body.remove_prefix(1);
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
    if (!body.empty() && body.front() == '@') {
        auto expanded = shorthand(body);
        if (expanded.empty()) {
            throw InvalidInput(fmt::format("cron expression '{}': unknown shorthand '{}' (accepted: @yearly, "
                                           "@annually, @monthly, @weekly, @daily, @midnight, @hourly)",
                                           text, body));
        }
        body = expanded;
    }
    auto fields = split_fields(body);
    if (fields.size() != 5) {
        throw InvalidInput(fmt::format("cron expression '{}' has {} field{}; expected 5: minute hour day-of-month "
                                       "month day-of-week (seconds and years are not supported)",
                                       text, fields.size(), fields.size() == 1 ? "" : "s"));
    }
    std::array<std::vector<bool>, 5> values;
    for (std::size_t i = 0; i < 5; ++i) {
        try {
            values[i] = parse_field(fields[i], kFields[i]);
        } catch (const FieldError& fe) {
            throw InvalidInput(fmt::format("cron expression '{}': the {} field ({}, '{}') is malformed: {}", text,
                                           kFields[i].name, kOrdinal[i], fields[i], fe.message));
        }
    }
    for (std::size_t v = 0; v < 60; ++v) e.minutes_[v] = values[0][v];
    for (std::size_t v = 0; v < 24; ++v) e.hours_[v] = values[1][v];
    for (std::size_t v = 1; v <= 31; ++v) e.days_[v] = values[2][v];
    for (std::size_t v = 1; v <= 12; ++v) e.months_[v] = values[3][v];
    for (std::size_t v = 0; v <= 7; ++v) {
        if (values[4][v]) e.weekdays_[v % 7] = true;
    }
    e.days_star_ = fields[2].front() == '*';
    e.weekdays_star_ = fields[4].front() == '*';
    // Day-of-month alone decides (day-of-week is `*`): some chosen month must have a chosen
    // day (the 29th of February counts: leap years come).
    if (e.weekdays_star_ && !e.days_star_) {
        bool possible = false;
        for (unsigned m = 1; m <= 12 && !possible; ++m) {
            if (!e.months_[m]) continue;
            unsigned last = m == 2 ? 29 : days_in(2001, m);
            for (unsigned d = 1; d <= last; ++d) possible = possible || e.days_[d];
        }
        if (!possible) {
            throw InvalidInput(fmt::format("cron expression '{}': the day-of-month field (3rd, '{}') names no day "
                                           "that exists in the months of the month field ('{}'), so it would never fire",
                                           text, fields[2], fields[3]));
        }
    }
    return e;
}

bool CronExpression::day_matches(int year, unsigned month, unsigned day) const {
    using namespace std::chrono;
    auto wd = weekday{sys_days{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}}}.c_encoding();
    bool dom = days_[day];
    bool dow = weekdays_[wd];
    if (days_star_ || weekdays_star_) return dom && dow;
    return dom || dow;
}

bool CronExpression::matches(std::int64_t at_ms) const {
    using namespace std::chrono;
    auto tp = sys_time<milliseconds>(milliseconds(at_ms));
    auto dp = floor<days>(tp);
    year_month_day ymd{dp};
    hh_mm_ss hms{floor<minutes>(tp - dp)};
    return months_[static_cast<unsigned>(ymd.month())] &&
           day_matches(static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                       static_cast<unsigned>(ymd.day())) &&
           hours_[static_cast<std::size_t>(hms.hours().count())] &&
           minutes_[static_cast<std::size_t>(hms.minutes().count())];
}

std::optional<std::int64_t> CronExpression::next_after(std::int64_t after_ms) const {
    using namespace std::chrono;
    // The next whole minute after `after_ms` (floor, then one minute on; exact for negatives).
    auto t = floor<minutes>(sys_time<milliseconds>(milliseconds(after_ms))) + minutes(1);
    for (;;) {
        auto dp = floor<days>(t);
        year_month_day ymd{dp};
        int y = static_cast<int>(ymd.year());
        unsigned m = static_cast<unsigned>(ymd.month());
        unsigned d = static_cast<unsigned>(ymd.day());
        if (y > 9999) return std::nullopt;
        if (!months_[m]) {
            auto next = year_month_day{ymd.year() / ymd.month() / 1} + months(1);
            t = sys_days{next};
            continue;
        }
        if (!day_matches(y, m, d)) {
            t = dp + days(1);
            continue;
        }
        auto h = duration_cast<hours>(t - dp).count();
        if (!hours_[static_cast<std::size_t>(h)]) {
            t = dp + hours(h + 1);
            continue;
        }
        auto min = duration_cast<minutes>(t - dp - hours(h)).count();
        auto mi = static_cast<std::size_t>(min);
        while (mi < 60 && !minutes_[mi]) ++mi;
        if (mi == 60) {
            t = dp + hours(h + 1);
            continue;
        }
        return duration_cast<milliseconds>((dp + hours(h) + minutes(mi)).time_since_epoch()).count();
    }
}

std::string format_utc(std::int64_t ms) {
    using namespace std::chrono;
    auto tp = sys_time<milliseconds>(milliseconds(ms));
    auto dp = floor<days>(tp);
    year_month_day ymd{dp};
    hh_mm_ss hms{tp - dp};
    auto frac = hms.subseconds().count();
    std::string s = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                                hms.hours().count(), hms.minutes().count(), hms.seconds().count());
    if (frac != 0) s += fmt::format(".{:03}", frac);
    return s + "Z";
}

}  // namespace durable
