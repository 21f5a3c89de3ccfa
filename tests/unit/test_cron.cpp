// Cron expressions: every field form, the day-of-month / day-of-week rule, next-fire times
// across month and year ends and leap days (UTC), and errors that name the field.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "durable/cron.hpp"
#include "durable/errors.hpp"

using durable::CronExpression;
using durable::format_utc;

namespace {

std::int64_t at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
    using namespace std::chrono;
    auto dp = sys_days{year{y} / month{mo} / day{d}};
    return duration_cast<milliseconds>((dp + hours(h) + minutes(mi)).time_since_epoch()).count();
}

std::string next(const std::string& expr, std::int64_t from) {
    auto n = CronExpression::parse(expr).next_after(from);
    REQUIRE(n.has_value());
    return format_utc(*n);
}

// The next `count` fire times after `from`.
std::vector<std::string> series(const std::string& expr, std::int64_t from, int count) {
    auto e = CronExpression::parse(expr);
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) {
        auto n = e.next_after(from);
        REQUIRE(n.has_value());
        out.push_back(format_utc(*n));
        from = *n;
    }
    return out;
}

std::string error_of(const std::string& expr) {
    try {
        CronExpression::parse(expr);
    } catch (const durable::InvalidInput& e) {
        return e.what();
    }
    FAIL("parse accepted '" << expr << "'");
    return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("cron every minute fires on the next whole minute, strictly after") {
    CHECK(next("* * * * *", at(2026, 11, 28, 9, 0)) == "2026-11-28T09:01:00Z");
    CHECK(next("* * * * *", at(2026, 11, 28, 9, 0) + 59'999) == "2026-11-28T09:01:00Z");
    CHECK(next("* * * * *", at(2026, 11, 28, 9, 0) - 1) == "2026-11-28T09:00:00Z");
}

TEST_CASE("cron steps, ranges and lists") {
    CHECK(series("*/15 * * * *", at(2026, 1, 1, 10, 7), 5) ==
          std::vector<std::string>{"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z", "2026-01-01T10:45:00Z",
                                   "2026-01-01T11:00:00Z", "2026-01-01T11:15:00Z"});
    CHECK(series("5/20 * * * *", at(2026, 1, 1, 10, 0), 4) ==
          std::vector<std::string>{"2026-01-01T10:05:00Z", "2026-01-01T10:25:00Z", "2026-01-01T10:45:00Z",
                                   "2026-01-01T11:05:00Z"});
    CHECK(series("0-30/10 9-10 * * *", at(2026, 1, 1, 9, 0), 7) ==
          std::vector<std::string>{"2026-01-01T09:10:00Z", "2026-01-01T09:20:00Z", "2026-01-01T09:30:00Z",
                                   "2026-01-01T10:00:00Z", "2026-01-01T10:10:00Z", "2026-01-01T10:20:00Z",
                                   "2026-01-01T10:30:00Z"});
    CHECK(series("1,2,58 23 * * *", at(2026, 1, 1), 4) ==
          std::vector<std::string>{"2026-01-01T23:01:00Z", "2026-01-01T23:02:00Z", "2026-01-01T23:58:00Z",
                                   "2026-01-02T23:01:00Z"});
    // Lists of ranges and steps together.
    CHECK(series("0 1-2,22/1 * * *", at(2026, 3, 1), 5) ==
          std::vector<std::string>{"2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z", "2026-03-01T22:00:00Z",
                                   "2026-03-01T23:00:00Z", "2026-03-02T01:00:00Z"});
}

TEST_CASE("cron month and weekday names in any case") {
    // 2026-11-28 is a Saturday.
    CHECK(series("30 8 * * MON-fri", at(2026, 11, 28), 3) ==
          std::vector<std::string>{"2026-11-30T08:30:00Z", "2026-12-01T08:30:00Z", "2026-12-02T08:30:00Z"});
    CHECK(next("0 0 1 jan,JUL *", at(2026, 2, 1)) == "2026-07-01T00:00:00Z");
    CHECK(next("0 0 * * sun", at(2026, 11, 28)) == "2026-11-29T00:00:00Z");
    // 0 and 7 are both Sunday; 5-7 runs Friday to Sunday.
    CHECK(next("0 0 * * 7", at(2026, 11, 28)) == "2026-11-29T00:00:00Z");
    CHECK(series("0 12 * * 5-7", at(2026, 11, 26), 4) ==
          std::vector<std::string>{"2026-11-27T12:00:00Z", "2026-11-28T12:00:00Z", "2026-11-29T12:00:00Z",
                                   "2026-12-04T12:00:00Z"});
}

TEST_CASE("cron day-of-month and day-of-week: either when both are restricted, both when one is a star") {
    // Every 13th and every Friday (2026-11-13 is a Friday, 2026-12-13 a Sunday).
    CHECK(series("0 0 13 * FRI", at(2026, 11, 27), 4) ==
          std::vector<std::string>{"2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z",
                                   "2026-12-18T00:00:00Z"});
    // `*/2` starts with a star: Fridays that fall on odd days only.
    CHECK(series("0 0 */2 * FRI", at(2026, 11, 27), 3) ==
          std::vector<std::string>{"2026-12-11T00:00:00Z", "2026-12-25T00:00:00Z", "2027-01-01T00:00:00Z"});
    // A star weekday: the day of month alone.
    CHECK(next("0 0 13 * *", at(2026, 11, 14)) == "2026-12-13T00:00:00Z");
}

TEST_CASE("cron next fire across month and year ends") {
    CHECK(next("59 23 31 * *", at(2026, 4, 1)) == "2026-05-31T23:59:00Z");  // April has no 31st
    CHECK(series("0 0 31 * *", at(2026, 1, 31, 0, 1), 4) ==
          std::vector<std::string>{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
                                   "2026-08-31T00:00:00Z"});
    CHECK(next("0 0 1 1 *", at(2026, 12, 31, 23, 59)) == "2027-01-01T00:00:00Z");
    CHECK(next("* * * * *", at(2026, 12, 31, 23, 59)) == "2027-01-01T00:00:00Z");
    CHECK(next("0 0 30 * *", at(2027, 1, 30, 0, 0)) == "2027-03-30T00:00:00Z");  // February skipped
    CHECK(next("@yearly", at(2026, 6, 1)) == "2027-01-01T00:00:00Z");
    CHECK(next("@monthly", at(2026, 1, 31, 12)) == "2026-02-01T00:00:00Z");
    CHECK(next("@weekly", at(2026, 11, 28)) == "2026-11-29T00:00:00Z");
    CHECK(next("@daily", at(2026, 11, 28, 9)) == "2026-11-29T00:00:00Z");
    CHECK(next("@hourly", at(2026, 11, 28, 9, 30)) == "2026-11-28T10:00:00Z");
}

TEST_CASE("cron leap days: the 29th of February waits for a leap year, and 2100 is not one") {
    CHECK(next("0 0 29 2 *", at(2026, 1, 1)) == "2028-02-29T00:00:00Z");
    CHECK(next("0 0 29 2 *", at(2028, 2, 29)) == "2032-02-29T00:00:00Z");
    CHECK(next("0 0 29 2 *", at(2096, 3, 1)) == "2104-02-29T00:00:00Z");
    CHECK(next("0 0 29 2 *", at(2000, 1, 1)) == "2000-02-29T00:00:00Z");  // 2000 is (divisible by 400)
    CHECK(next("0 0 28 2 *", at(2028, 2, 28, 0, 1)) == "2029-02-28T00:00:00Z");
    // The last days of February, leap and not.
    CHECK(series("0 12 28-31 2 *", at(2028, 2, 27), 3) ==
          std::vector<std::string>{"2028-02-28T12:00:00Z", "2028-02-29T12:00:00Z", "2029-02-28T12:00:00Z"});
}

TEST_CASE("cron matches says whether a minute fires") {
    auto e = CronExpression::parse("*/5 9-17 * * MON-FRI");
    CHECK(e.matches(at(2026, 11, 30, 9, 5)));
    CHECK(e.matches(at(2026, 11, 30, 9, 5) + 30'000));
    CHECK_FALSE(e.matches(at(2026, 11, 30, 9, 6)));
    CHECK_FALSE(e.matches(at(2026, 11, 28, 9, 5)));  // a Saturday
    CHECK_FALSE(e.matches(at(2026, 11, 30, 18, 0)));
    CHECK(e.text() == "*/5 9-17 * * MON-FRI");
}

TEST_CASE("cron errors name the field and say what is accepted") {
    auto m = error_of("60 * * * *");
    CHECK(contains(m, "minute field"));
    CHECK(contains(m, "60 is out of range"));
    CHECK(contains(m, "0-59"));
    CHECK(contains(error_of("0 24 * * *"), "hour field"));
    auto d = error_of("0 0 32 * *");
    CHECK(contains(d, "day-of-month field"));
    CHECK(contains(d, "1-31"));
    CHECK(contains(error_of("0 0 0 * *"), "day-of-month field"));
    auto mo = error_of("0 0 1 FOO *");
    CHECK(contains(mo, "month field"));
    CHECK(contains(mo, "JAN-DEC"));
    CHECK(contains(error_of("0 0 1 13 *"), "month field"));
    auto w = error_of("0 0 * * 8");
    CHECK(contains(w, "day-of-week field"));
    CHECK(contains(w, "SUN-SAT"));
    CHECK(contains(error_of("0 0 * * MON-"), "day-of-week field"));
    CHECK(contains(error_of("*/0 * * * *"), "a step of 0"));
    CHECK(contains(error_of("*/ * * * *"), "minute field"));
    CHECK(contains(error_of("5-1 * * * *"), "runs backwards"));
    CHECK(contains(error_of("1,,2 * * * *"), "empty list item"));
    CHECK(contains(error_of("* x * * *"), "hour field"));
    CHECK(contains(error_of("* * * JAN-FEB/x *"), "month field"));
    auto count = error_of("* * * *");
    CHECK(contains(count, "has 4 fields"));
    CHECK(contains(count, "minute hour day-of-month month day-of-week"));
    CHECK(contains(error_of("0 * * * * *"), "has 6 fields"));
    CHECK(contains(error_of(""), "has 0 fields"));
    CHECK(contains(error_of("@fortnightly"), "unknown shorthand"));
    // Never fires: February has no 30th.
    auto never = error_of("0 0 30 2 *");
    CHECK(contains(never, "day-of-month field"));
    CHECK(contains(never, "never fire"));
    CHECK(contains(error_of("0 0 31 4,6,9,11 *"), "never fire"));
}

TEST_CASE("format_utc writes ISO 8601 UTC") {
    CHECK(format_utc(0) == "1970-01-01T00:00:00Z");
    CHECK(format_utc(at(2026, 11, 28, 9, 5) + 1'234) == "2026-11-28T09:05:01.234Z");
}
