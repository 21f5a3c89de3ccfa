// durable/cron.hpp — standard five-field cron expressions, evaluated in UTC.
//
//   minute hour day-of-month month day-of-week
//   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
//
// Each field is `*` or a comma-separated list of items: a value (`5`, `JAN`, `mon`), a
// range (`1-5`, `MON-FRI`), or either with a step (`*/15`, `0-30/10`, `5/20` = 5 to the end
// of the field every 20). Month and day-of-week take three-letter English names, in any
// case. The shorthands @yearly (@annually), @monthly, @weekly, @daily (@midnight) and
// @hourly stand for their usual expressions.
//
// Days follow the classic (Vixie) cron rule: when both day-of-month and day-of-week are
// restricted (neither field starts with `*`), a day matches if EITHER matches; otherwise both
// must match, a `*` field matching every day. So `0 0 13 * FRI` fires on every 13th and on
// every Friday, while `0 0 */2 * FRI` fires on Fridays that fall on odd days.
// Times are UTC: no time zones, no daylight-saving gaps or repeats.
//
// Thread safety: a CronExpression is immutable once parsed; share it freely.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace durable {

class CronExpression {
public:
    // Parses `text`. Throws InvalidInput naming the field that is wrong (or saying how many
    // fields there are) and what is accepted there; also for an expression that can never
    // fire (`0 0 30 2 *`: February has no 30th).
    static CronExpression parse(std::string_view text);

    // The first whole minute strictly after `after_ms` (ms since the Unix epoch, UTC) that
    // the expression matches, in ms since the epoch. None only past the year 9999.
    std::optional<std::int64_t> next_after(std::int64_t after_ms) const;
    // True when the minute holding `at_ms` matches.
    bool matches(std::int64_t at_ms) const;
    // The expression as given (a shorthand stays a shorthand).
    const std::string& text() const { return text_; }

private:
    CronExpression() = default;
    bool day_matches(int year, unsigned month, unsigned day) const;

    std::string text_;
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;    // 1-31
    std::bitset<13> months_;  // 1-12
    std::bitset<7> weekdays_; // 0 = Sunday
    bool days_star_ = false, weekdays_star_ = false;
};

// `ms` (since the Unix epoch) as ISO 8601 UTC: 2026-11-28T09:05:00Z (milliseconds shown only
// when not zero).
std::string format_utc(std::int64_t ms);

}  // namespace durable
