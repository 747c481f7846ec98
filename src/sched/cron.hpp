// Cron schedules and the time zones they run in.
//
// A CronSchedule is a five-field cron expression (minute hour day-of-month
// month day-of-week) or one of the @yearly ... @hourly macros. next_after()
// answers "when does it fire next, after this instant, in that zone?" with a
// calendar search (microseconds; it never steps minute by minute).
//
// A TimeZone is read from the system's tz database (/usr/share/zoneinfo, the
// TZif files of RFC 8536, versions 1-4), including the POSIX TZ rule in the
// file's footer that gives the offsets after the last stored transition, so
// dates decades ahead are right. No clock is read anywhere: every call carries
// its instant, so tests are exact.
//
// Daylight saving, as a user expects a nightly job to behave:
//  - a local time that does not exist (the clock springs forward over it)
//    fires at the first instant after the gap, once;
//  - a local time that occurs twice (the clock falls back) fires once, at its
//    first occurrence.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::sched {

// A refused expression or time zone; what() is one line naming the mistake.
struct CronError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class TimeZone {
 public:
  // A zone by its tz database name ("Europe/Berlin") or "UTC". Names with
  // "..", absolute paths and anything that is not a TZif file are refused
  // with CronError("unknown time zone: NAME").
  static TimeZone load(std::string_view name);
  // The same from another zoneinfo directory (tests, or TZDIR-like setups).
  static TimeZone load(std::string_view name, const std::filesystem::path& directory);
  // A zone from the bytes of a TZif file; refuses a damaged one (files over
  // 1 MiB, counts that do not fit, unsorted transitions, a bad footer).
  static TimeZone from_tzif(std::string name, std::string_view bytes);
  static TimeZone utc();

  const std::string& name() const { return name_; }
  // The UTC offset in effect at that instant (local = UTC + offset). Instants
  // outside the years 1-9999 count as the nearest one inside.
  std::chrono::seconds offset_at(std::int64_t unix_seconds) const;
  // The first instant at which the local clock shows `local_seconds` or
  // later (local_seconds counts seconds of local wall time from 1970-01-01
  // 00:00 local). Inside a gap this is the end of the gap; for a time shown
  // twice it is the first showing.
  std::int64_t first_instant_showing(std::int64_t local_seconds) const;

 private:
  friend struct TzifReader;
  // When a POSIX TZ rule (the TZif footer, e.g. "CET-1CEST,M3.5.0,M10.5.0/3")
  // changes between standard and daylight time, in local time of the day.
  struct RuleDate {
    char kind = 'M';  // 'J': day 1-365 without Feb 29; 'D': day 0-365; 'M': month.week.weekday
    int day = 0, month = 0, week = 0, weekday = 0;
    std::int64_t time = 7200;  // seconds after local midnight
  };
  struct PosixRule {
    std::int32_t standard_offset = 0;  // seconds east of UTC
    std::optional<std::int32_t> daylight_offset;
    RuleDate daylight_start, daylight_end;
  };
  struct Transition {
    std::int64_t at;      // Unix seconds
    std::int32_t offset;  // in effect from `at` on
  };
  bool rule_applies(std::int64_t unix_seconds) const;
  std::int32_t rule_offset(std::int64_t unix_seconds) const;
  std::optional<std::int64_t> next_transition(std::int64_t unix_seconds) const;
  std::array<Transition, 2> rule_transitions(std::int64_t year) const;

  std::string name_;
  std::int32_t initial_offset_ = 0;  // before the first transition
  std::vector<Transition> transitions_;
  std::optional<PosixRule> rule_;  // after the last transition
};

class CronSchedule {
 public:
  // Fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or jan-dec,
  // day-of-week 0-7 or sun-sat (0 and 7 are Sunday); names are case-insensitive.
  // Each field is a comma list of `*`, `n`, `a-b`, `*/n`, `a-b/n` or `a/n`
  // (a to the field's end, every n). When both day fields are restricted (do
  // not cover their whole range) a day matching either runs, as cron does.
  // Throws CronError with one line naming the field, e.g.
  //   cron "61 * * * *": minute: 61 is not in 0-59
  static CronSchedule parse(std::string_view expression);

  // The first instant strictly after `after_ms` (Unix milliseconds) at which
  // it fires in zone `tz`, on a whole minute of local time; nullopt when it
  // never fires (e.g. "0 0 30 2 *"). Every schedule that fires at all fires
  // within 9 years (Feb 29 may be 8 years away), which bounds the search.
  // Also nullopt for instants outside the years 2-9989.
  std::optional<std::int64_t> next_after(std::int64_t after_ms, const TimeZone& tz) const;

  const std::string& expression() const { return expression_; }

  // Whether the fields match a local date and time (month 1-12, weekday 0-6 = Sun-Sat).
  bool matches(int month, int day, int weekday, int hour, int minute) const;

 private:
  bool day_matches(int day, int weekday) const;

  std::string expression_;
  std::uint64_t minutes_ = 0;  // bit n: minute n
  std::uint32_t hours_ = 0;
  std::uint32_t days_ = 0;      // bit n: day of month n (1-31)
  std::uint32_t months_ = 0;    // bit n: month n (1-12)
  std::uint32_t weekdays_ = 0;  // bit n: weekday n (0-6, Sunday 0)
  bool either_day_ = false;     // both day fields restricted: a day matching either runs
};

}  // namespace ferry::sched
