#include "sched/cron.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ferry::sched {
namespace {

// --- helpers: instants written as local time with their offset

// "2026-03-29 03:00 +02:00" -> Unix milliseconds.
std::int64_t instant(const char* text) {
  int year, month, day, hour, minute, offset_hours, offset_minutes;
  char sign;
  if (std::sscanf(text, "%d-%d-%d %d:%d %c%d:%d", &year, &month, &day, &hour, &minute, &sign,
                  &offset_hours, &offset_minutes) != 8)
    ADD_FAILURE() << "bad instant " << text;
  std::tm fields{};
  fields.tm_year = year - 1900, fields.tm_mon = month - 1, fields.tm_mday = day;
  fields.tm_hour = hour, fields.tm_min = minute;
  const std::int64_t offset = (sign == '-' ? -1 : 1) * (offset_hours * 3600 + offset_minutes * 60);
  return (static_cast<std::int64_t>(timegm(&fields)) - offset) * 1000;
}

std::tm civil(std::int64_t seconds) {
  const std::time_t time = seconds;
  std::tm fields{};
  gmtime_r(&time, &fields);
  return fields;
}

// Unix milliseconds -> "2026-03-29 03:00 +02:00" in that zone (seconds shown when not 0).
std::string local(std::int64_t ms, const TimeZone& zone) {
  const std::int64_t seconds = ms / 1000;
  const auto offset = static_cast<int>(zone.offset_at(seconds).count());
  const std::tm fields = civil(seconds + offset);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d", fields.tm_year + 1900,
                fields.tm_mon + 1, fields.tm_mday, fields.tm_hour, fields.tm_min);
  std::string out = text;
  if (fields.tm_sec != 0 || ms % 1000 != 0)
    out += ":" + std::to_string(fields.tm_sec) + "+" + std::to_string(ms % 1000);
  std::snprintf(text, sizeof text, " %c%02d:%02d", offset < 0 ? '-' : '+', std::abs(offset) / 3600,
                std::abs(offset) % 3600 / 60);
  return out + text;
}

// The next `count` firings after `from`, in local time.
std::vector<std::string> firings(const char* expression, const char* from, const TimeZone& zone,
                                 int count = 1) {
  const CronSchedule schedule = CronSchedule::parse(expression);
  std::vector<std::string> out;
  std::int64_t after = instant(from);
  for (int i = 0; i < count; ++i) {
    const std::optional<std::int64_t> next = schedule.next_after(after, zone);
    if (!next) {
      out.push_back("never");
      break;
    }
    out.push_back(local(*next, zone));
    after = *next;
  }
  return out;
}

using Strings = std::vector<std::string>;

bool matches_local(const CronSchedule& schedule, std::int64_t local_seconds) {
  const std::tm fields = civil(local_seconds);
  return schedule.matches(fields.tm_mon + 1, fields.tm_mday, fields.tm_wday, fields.tm_hour,
                          fields.tm_min);
}

// --- parsing

TEST(CronParse, FieldsListsRangesStepsAndNames) {
  const CronSchedule office = CronSchedule::parse("*/15 9-17 * * mon-FRI");
  EXPECT_TRUE(office.matches(3, 2, 1, 9, 15));
  EXPECT_TRUE(office.matches(3, 6, 5, 17, 45));
  EXPECT_FALSE(office.matches(3, 2, 1, 9, 10));
  EXPECT_FALSE(office.matches(3, 2, 1, 18, 0));
  EXPECT_FALSE(office.matches(3, 1, 0, 9, 0));  // Sunday
  EXPECT_FALSE(office.matches(3, 7, 6, 9, 0));  // Saturday
  EXPECT_EQ(office.expression(), "*/15 9-17 * * mon-FRI");

  const CronSchedule lists = CronSchedule::parse("0,30 6 1,15 Jan,jul *");
  EXPECT_TRUE(lists.matches(1, 15, 4, 6, 30));
  EXPECT_TRUE(lists.matches(7, 1, 3, 6, 0));
  EXPECT_FALSE(lists.matches(2, 1, 0, 6, 0));
  EXPECT_FALSE(lists.matches(1, 2, 5, 6, 0));

  const CronSchedule steps =
      CronSchedule::parse("10/20 1-10/3 * * *");  // a/n: from a to the field's end
  for (int minute = 0; minute < 60; ++minute)
    EXPECT_EQ(steps.matches(1, 1, 4, 1, minute), minute == 10 || minute == 30 || minute == 50)
        << minute;
  for (int hour = 0; hour < 24; ++hour)
    EXPECT_EQ(steps.matches(1, 1, 4, hour, 10), hour == 1 || hour == 4 || hour == 7 || hour == 10)
        << hour;

  // 0 and 7 are both Sunday; 5-7 is Friday to Sunday; 1/2 stops at Saturday.
  EXPECT_TRUE(CronSchedule::parse("0 0 * * 7").matches(1, 4, 0, 0, 0));
  EXPECT_FALSE(CronSchedule::parse("0 0 * * 7").matches(1, 5, 1, 0, 0));
  for (int weekday = 0; weekday < 7; ++weekday) {
    EXPECT_EQ(CronSchedule::parse("0 0 * * 5-7").matches(1, 1, weekday, 0, 0),
              weekday == 5 || weekday == 6 || weekday == 0);
    EXPECT_EQ(CronSchedule::parse("0 0 * * 1/2").matches(1, 1, weekday, 0, 0),
              weekday == 1 || weekday == 3 || weekday == 5);
    EXPECT_EQ(CronSchedule::parse("0 0 * * SUN,sat").matches(1, 1, weekday, 0, 0),
              weekday == 0 || weekday == 6);
  }
  EXPECT_TRUE(
      CronSchedule::parse(" \t0  007 * * *\t").matches(5, 5, 2, 7, 0));  // blanks and leading zeros
}

TEST(CronParse, Macros) {
  const CronSchedule yearly = CronSchedule::parse("@yearly");
  EXPECT_EQ(yearly.expression(), "@yearly");
  EXPECT_TRUE(yearly.matches(1, 1, 3, 0, 0));
  EXPECT_FALSE(yearly.matches(2, 1, 3, 0, 0));
  EXPECT_TRUE(CronSchedule::parse("@annually").matches(1, 1, 5, 0, 0));
  EXPECT_TRUE(CronSchedule::parse("@monthly").matches(6, 1, 5, 0, 0));
  EXPECT_FALSE(CronSchedule::parse("@monthly").matches(6, 2, 6, 0, 0));
  EXPECT_TRUE(CronSchedule::parse("@weekly").matches(6, 7, 0, 0, 0));
  EXPECT_FALSE(CronSchedule::parse("@weekly").matches(6, 1, 1, 0, 0));
  EXPECT_TRUE(CronSchedule::parse("@DAILY").matches(6, 9, 2, 0, 0));
  EXPECT_FALSE(CronSchedule::parse("@midnight").matches(6, 9, 2, 1, 0));
  EXPECT_TRUE(CronSchedule::parse(" @hourly ").matches(6, 9, 2, 13, 0));
  EXPECT_FALSE(CronSchedule::parse("@hourly").matches(6, 9, 2, 13, 1));
}

TEST(CronParse, EveryRefusalIsOneLineNamingTheField) {
  const std::pair<std::string, std::string> refusals[] = {
      {"61 * * * *", R"(cron "61 * * * *": minute: 61 is not in 0-59)"},
      {"* 24 * * *", R"(cron "* 24 * * *": hour: 24 is not in 0-23)"},
      {"* * 0 * *", R"(cron "* * 0 * *": day-of-month: 0 is not in 1-31)"},
      {"* * 32 * *", R"(cron "* * 32 * *": day-of-month: 32 is not in 1-31)"},
      {"* * * 13 *", R"(cron "* * * 13 *": month: 13 is not in 1-12)"},
      {"* * * 0 *", R"(cron "* * * 0 *": month: 0 is not in 1-12)"},
      {"* * * * 8", R"(cron "* * * * 8": day-of-week: 8 is not in 0-7)"},
      {"99999999999 * * * *", R"(cron "99999999999 * * * *": minute: 99999999999 is not in 0-59)"},
      {"* * * foo *", R"(cron "* * * foo *": month: "foo" is not a month (1-12 or jan-dec))"},
      {"* * * janu *", R"(cron "* * * janu *": month: "janu" is not a month (1-12 or jan-dec))"},
      {"* * * * funday",
       R"(cron "* * * * funday": day-of-week: "funday" is not a weekday (0-7 or sun-sat))"},
      {"mon * * * *", R"(cron "mon * * * *": minute: "mon" is not a number)"},
      {"* * jan * *", R"(cron "* * jan * *": day-of-month: "jan" is not a number)"},
      {"*-5 * * * *", R"(cron "*-5 * * * *": minute: "*" is not a number)"},
      {"5-1 * * * *", R"(cron "5-1 * * * *": minute: "5-1" is a backwards range)"},
      {"* * * * fri-mon", R"(cron "* * * * fri-mon": day-of-week: "fri-mon" is a backwards range)"},
      {"*/0 * * * *", R"(cron "*/0 * * * *": minute: step 0 is not in 1-59)"},
      {"*/60 * * * *", R"(cron "*/60 * * * *": minute: step 60 is not in 1-59)"},
      {"* */24 * * *", R"(cron "* */24 * * *": hour: step 24 is not in 1-23)"},
      {"* * * * */7", R"(cron "* * * * */7": day-of-week: step 7 is not in 1-6)"},
      {"*/99999999 * * * *", R"(cron "*/99999999 * * * *": minute: step 99999999 is not in 1-59)"},
      {"1,,2 * * * *", R"(cron "1,,2 * * * *": minute: empty list item in "1,,2")"},
      {"* 1, * * *", R"(cron "* 1, * * *": hour: empty list item in "1,")"},
      {"-1 * * * *", R"(cron "-1 * * * *": minute: "-1" is not a value, range or step)"},
      {"1- * * * *", R"(cron "1- * * * *": minute: "1-" is not a value, range or step)"},
      {"1-2-3 * * * *", R"(cron "1-2-3 * * * *": minute: "1-2-3" is not a value, range or step)"},
      {"*/2/3 * * * *", R"(cron "*/2/3 * * * *": minute: "*/2/3" is not a value, range or step)"},
      {"*/ * * * *", R"(cron "*/ * * * *": minute: "*/" is not a value, range or step)"},
      {"*/x * * * *", R"(cron "*/x * * * *": minute: "*/x" is not a value, range or step)"},
      {"", R"(cron "": expected 5 fields (minute hour day-of-month month day-of-week), found 0)"},
      {"* * * *",
       R"(cron "* * * *": expected 5 fields (minute hour day-of-month month day-of-week), found 4)"},
      {"0 * * * * *",
       R"(cron "0 * * * * *": expected 5 fields (minute hour day-of-month month day-of-week), found 6)"},
      {"@every",
       R"(cron "@every": unknown macro "@every" (known: @yearly @annually @monthly @weekly @daily @midnight @hourly))"},
      {"@reboot",
       R"(cron "@reboot": unknown macro "@reboot" (known: @yearly @annually @monthly @weekly @daily @midnight @hourly))"},
      {"@daily *", R"(cron "@daily *": @daily takes no fields)"},
      {"0 0 1\n * *", R"(cron "0 0 1\x0a * *": day-of-month: "1\x0a" is not a number)"},
      {"0 0 \"1\" * *", R"(cron "0 0 \"1\" * *": day-of-month: "\"1\"" is not a number)"},
  };
  for (const auto& [expression, message] : refusals) {
    try {
      CronSchedule::parse(expression);
      ADD_FAILURE() << "accepted " << expression;
    } catch (const CronError& error) {
      EXPECT_EQ(error.what(), message);
      EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos);
    }
  }
  const std::string long_expression(500, '1');
  try {
    CronSchedule::parse(long_expression);
    ADD_FAILURE();
  } catch (const CronError& error) {
    EXPECT_LT(std::string(error.what()).size(), 300u) << error.what();
  }
}

// --- next_after in UTC: the calendar

TEST(CronNext, MonthAndYearEnds) {
  const TimeZone utc = TimeZone::utc();
  EXPECT_EQ(
      firings("0 0 31 * *", "2026-04-01 00:00 +00:00", utc, 3),
      (Strings{"2026-05-31 00:00 +00:00", "2026-07-31 00:00 +00:00", "2026-08-31 00:00 +00:00"}));
  EXPECT_EQ(firings("0 12 30 * *", "2026-01-31 00:00 +00:00", utc),
            (Strings{"2026-03-30 12:00 +00:00"}));
  EXPECT_EQ(
      firings("*/20 * * * *", "2026-12-31 23:30 +00:00", utc, 3),
      (Strings{"2026-12-31 23:40 +00:00", "2027-01-01 00:00 +00:00", "2027-01-01 00:20 +00:00"}));
  EXPECT_EQ(firings("@yearly", "2026-06-01 00:00 +00:00", utc, 2),
            (Strings{"2027-01-01 00:00 +00:00", "2028-01-01 00:00 +00:00"}));
  EXPECT_EQ(firings("59 23 * * *", "2028-02-28 23:59 +00:00", utc),
            (Strings{"2028-02-29 23:59 +00:00"}));
  // Before 1970 too.
  EXPECT_EQ(firings("0 0 1 1 *", "1969-06-01 00:00 +00:00", utc),
            (Strings{"1970-01-01 00:00 +00:00"}));
}

TEST(CronNext, StrictlyAfterAndOnWholeMinutes) {
  const TimeZone utc = TimeZone::utc();
  const CronSchedule daily = CronSchedule::parse("0 0 * * *");
  const std::int64_t midnight = instant("2026-01-01 00:00 +00:00");
  EXPECT_EQ(daily.next_after(midnight, utc), instant("2026-01-02 00:00 +00:00"));
  EXPECT_EQ(daily.next_after(midnight - 1, utc), midnight);
  EXPECT_EQ(daily.next_after(midnight - 86'400'000, utc), midnight);
  const CronSchedule every_minute = CronSchedule::parse("* * * * *");
  EXPECT_EQ(every_minute.next_after(midnight + 1, utc), midnight + 60'000);
  EXPECT_EQ(every_minute.next_after(midnight + 59'999, utc), midnight + 60'000);
  EXPECT_EQ(every_minute.next_after(-1, utc), 0);
  EXPECT_EQ(every_minute.next_after(-60'001, utc), -60'000);
}

TEST(CronNext, LeapYears) {
  const TimeZone utc = TimeZone::utc();
  EXPECT_EQ(firings("0 12 29 2 *", "2025-01-01 00:00 +00:00", utc, 2),
            (Strings{"2028-02-29 12:00 +00:00", "2032-02-29 12:00 +00:00"}));
  // 2100 is not a leap year: eight years from one Feb 29 to the next.
  EXPECT_EQ(firings("0 12 29 2 *", "2096-03-01 00:00 +00:00", utc),
            (Strings{"2104-02-29 12:00 +00:00"}));
  EXPECT_EQ(firings("0 0 29 feb *", "2000-01-01 00:00 +00:00", utc),
            (Strings{"2000-02-29 00:00 +00:00"}));
}

TEST(CronNext, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
  const TimeZone utc = TimeZone::utc();
  // Every Friday, and the 13th whatever its weekday.
  EXPECT_EQ(
      firings("0 9 13 * fri", "2026-03-01 00:00 +00:00", utc, 8),
      (Strings{"2026-03-06 09:00 +00:00", "2026-03-13 09:00 +00:00", "2026-03-20 09:00 +00:00",
               "2026-03-27 09:00 +00:00", "2026-04-03 09:00 +00:00", "2026-04-10 09:00 +00:00",
               "2026-04-13 09:00 +00:00", "2026-04-17 09:00 +00:00"}));
  // One of them unrestricted: the other alone decides.
  EXPECT_EQ(firings("0 9 * * fri", "2026-04-11 00:00 +00:00", utc),
            (Strings{"2026-04-17 09:00 +00:00"}));
  EXPECT_EQ(firings("0 9 13 * *", "2026-04-11 00:00 +00:00", utc),
            (Strings{"2026-04-13 09:00 +00:00"}));
  EXPECT_EQ(firings("0 9 1-31 * mon", "2026-04-11 00:00 +00:00", utc),
            (Strings{"2026-04-13 09:00 +00:00"}));
  EXPECT_EQ(firings("0 9 13 * 0-7", "2026-04-11 00:00 +00:00", utc),
            (Strings{"2026-04-13 09:00 +00:00"}));
  // A step restricts: odd days or Mondays.
  EXPECT_EQ(
      firings("0 0 */2 * mon", "2026-04-11 12:00 +00:00", utc, 3),
      (Strings{"2026-04-13 00:00 +00:00", "2026-04-15 00:00 +00:00", "2026-04-17 00:00 +00:00"}));
  EXPECT_EQ(
      firings("0 0 */2 * mon", "2026-04-29 12:00 +00:00", utc, 3),
      (Strings{"2026-05-01 00:00 +00:00", "2026-05-03 00:00 +00:00", "2026-05-04 00:00 +00:00"}));
  // Feb 30 never comes, but Fridays in February do.
  EXPECT_EQ(firings("0 0 30 2 fri", "2026-01-01 00:00 +00:00", utc),
            (Strings{"2026-02-06 00:00 +00:00"}));
}

TEST(CronNext, StepsAndNames) {
  const TimeZone utc = TimeZone::utc();
  EXPECT_EQ(
      firings("5-50/15 */6 * * *", "2026-05-05 23:59 +00:00", utc, 5),
      (Strings{"2026-05-06 00:05 +00:00", "2026-05-06 00:20 +00:00", "2026-05-06 00:35 +00:00",
               "2026-05-06 00:50 +00:00", "2026-05-06 06:05 +00:00"}));
  EXPECT_EQ(firings("0 6 * feb-mar sun", "2026-01-01 00:00 +00:00", utc, 2),
            (Strings{"2026-02-01 06:00 +00:00", "2026-02-08 06:00 +00:00"}));
  EXPECT_EQ(
      firings("30 4 1 */4 *", "2026-02-01 00:00 +00:00", utc, 3),
      (Strings{"2026-05-01 04:30 +00:00", "2026-09-01 04:30 +00:00", "2027-01-01 04:30 +00:00"}));
}

TEST(CronNext, NeverIsNullopt) {
  const TimeZone utc = TimeZone::utc();
  const TimeZone berlin = TimeZone::load("Europe/Berlin");
  for (const char* never : {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30-31 feb *"}) {
    const CronSchedule schedule = CronSchedule::parse(never);
    EXPECT_EQ(schedule.next_after(instant("2026-01-01 00:00 +00:00"), utc), std::nullopt) << never;
    EXPECT_EQ(schedule.next_after(instant("2026-01-01 00:00 +00:00"), berlin), std::nullopt)
        << never;
  }
  // Beyond the years the calendar covers there is no answer either.
  EXPECT_EQ(
      CronSchedule::parse("* * * * *").next_after(std::numeric_limits<std::int64_t>::max(), utc),
      std::nullopt);
  EXPECT_EQ(
      CronSchedule::parse("* * * * *").next_after(std::numeric_limits<std::int64_t>::min(), utc),
      std::nullopt);
  EXPECT_EQ(berlin.offset_at(std::numeric_limits<std::int64_t>::max()).count(), 3600);
  EXPECT_EQ(berlin.offset_at(std::numeric_limits<std::int64_t>::min()).count(), 3208);  // mean time
  EXPECT_EQ(CronSchedule::parse("0 0 1 1 *").next_after(instant("9979-06-01 00:00 +00:00"), berlin),
            instant("9980-01-01 00:00 +01:00"));
}

// --- time zones and daylight saving

TEST(CronNext, BerlinSpringForwardFiresOnceAfterTheGap) {
  // 2026-03-29: at 02:00 CET the clock jumps to 03:00 CEST.
  const TimeZone berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(firings("30 2 * * *", "2026-03-28 12:00 +01:00", berlin, 2),
            (Strings{"2026-03-29 03:00 +02:00", "2026-03-30 02:30 +02:00"}));
  EXPECT_EQ(firings("*/15 2 * * *", "2026-03-29 00:00 +01:00", berlin, 2),
            (Strings{"2026-03-29 03:00 +02:00", "2026-03-30 02:00 +02:00"}));
  EXPECT_EQ(
      firings("* * * * *", "2026-03-29 01:58 +01:00", berlin, 3),
      (Strings{"2026-03-29 01:59 +01:00", "2026-03-29 03:00 +02:00", "2026-03-29 03:01 +02:00"}));
  EXPECT_EQ(firings("0 3 * * *", "2026-03-29 00:00 +01:00", berlin),
            (Strings{"2026-03-29 03:00 +02:00"}));
  EXPECT_EQ(
      CronSchedule::parse("30 2 * * *").next_after(instant("2026-03-28 12:00 +01:00"), berlin),
      instant("2026-03-29 01:00 +00:00"));
}

TEST(CronNext, BerlinFallBackFiresOnceAtTheFirstOccurrence) {
  // 2026-10-25: at 03:00 CEST the clock goes back to 02:00 CET.
  const TimeZone berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(firings("30 2 * * *", "2026-10-24 12:00 +02:00", berlin, 2),
            (Strings{"2026-10-25 02:30 +02:00", "2026-10-26 02:30 +01:00"}));
  // Asked during the second 02:00-03:00: 02:30 was already shown once.
  EXPECT_EQ(firings("30 2 * * *", "2026-10-25 02:10 +01:00", berlin),
            (Strings{"2026-10-26 02:30 +01:00"}));
  EXPECT_EQ(firings("*/30 * * * *", "2026-10-25 01:45 +02:00", berlin, 4),
            (Strings{"2026-10-25 02:00 +02:00", "2026-10-25 02:30 +02:00",
                     "2026-10-25 03:00 +01:00", "2026-10-25 03:30 +01:00"}));
}

TEST(CronNext, NewYork) {
  const TimeZone new_york = TimeZone::load("America/New_York");
  EXPECT_EQ(new_york.name(), "America/New_York");
  // 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
  EXPECT_EQ(firings("30 2 * * *", "2026-03-07 12:00 -05:00", new_york, 2),
            (Strings{"2026-03-08 03:00 -04:00", "2026-03-09 02:30 -04:00"}));
  EXPECT_EQ(firings("30 1 * * *", "2026-10-31 12:00 -04:00", new_york, 2),
            (Strings{"2026-11-01 01:30 -04:00", "2026-11-02 01:30 -05:00"}));
  EXPECT_EQ(firings("0 9 * * mon-fri", "2026-01-01 00:00 -05:00", new_york),
            (Strings{"2026-01-01 09:00 -05:00"}));
}

TEST(CronNext, LordHoweHalfHourDaylightSavingAndKolkata) {
  // Lord Howe Island: +10:30, and +11:00 in summer; 2026-04-05 02:00 -> 01:30, 2026-10-04 02:00 ->
  // 02:30.
  const TimeZone lord_howe = TimeZone::load("Australia/Lord_Howe");
  EXPECT_EQ(firings("45 1 * * *", "2026-04-04 12:00 +11:00", lord_howe, 2),
            (Strings{"2026-04-05 01:45 +11:00", "2026-04-06 01:45 +10:30"}));
  EXPECT_EQ(firings("15 2 * * *", "2026-10-03 12:00 +10:30", lord_howe, 2),
            (Strings{"2026-10-04 02:30 +11:00", "2026-10-05 02:15 +11:00"}));
  EXPECT_EQ(
      CronSchedule::parse("15 2 * * *").next_after(instant("2026-10-03 12:00 +10:30"), lord_howe),
      instant("2026-10-03 15:30 +00:00"));

  const TimeZone kolkata = TimeZone::load("Asia/Kolkata");
  EXPECT_EQ(firings("0 9 * * *", "2026-06-01 10:00 +05:30", kolkata),
            (Strings{"2026-06-02 09:00 +05:30"}));
  EXPECT_EQ(
      CronSchedule::parse("0 9 * * *").next_after(instant("2026-06-01 10:00 +05:30"), kolkata),
      instant("2026-06-02 03:30 +00:00"));
}

TEST(CronNext, FarFutureFollowsTheFooterRule) {
  // The files list transitions up to 2037; later years come from the footer rule.
  const TimeZone berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(firings("30 2 * * *", "2040-03-24 12:00 +01:00", berlin, 2),
            (Strings{"2040-03-25 03:00 +02:00", "2040-03-26 02:30 +02:00"}));
  EXPECT_EQ(firings("30 2 * * *", "2040-10-27 12:00 +02:00", berlin, 2),
            (Strings{"2040-10-28 02:30 +02:00", "2040-10-29 02:30 +01:00"}));
  EXPECT_EQ(firings("0 12 1 7 *", "2099-01-01 00:00 +01:00", berlin),
            (Strings{"2099-07-01 12:00 +02:00"}));
  const TimeZone new_york = TimeZone::load("America/New_York");
  EXPECT_EQ(firings("30 2 * * *", "2040-03-10 12:00 -05:00", new_york, 2),
            (Strings{"2040-03-11 03:00 -04:00", "2040-03-12 02:30 -04:00"}));
  EXPECT_EQ(firings("30 1 * * *", "2040-11-03 12:00 -04:00", new_york, 2),
            (Strings{"2040-11-04 01:30 -04:00", "2040-11-05 01:30 -05:00"}));
}

// --- TimeZone

TEST(TimeZone, OffsetsOfRealZones) {
  EXPECT_EQ(TimeZone::utc().name(), "UTC");
  EXPECT_EQ(TimeZone::load("UTC").offset_at(1'800'000'000).count(), 0);
  EXPECT_EQ(TimeZone::load("Etc/UTC").offset_at(1'800'000'000).count(), 0);
  const TimeZone berlin = TimeZone::load("Europe/Berlin");
  EXPECT_EQ(berlin.offset_at(instant("2026-01-15 12:00 +00:00") / 1000).count(), 3600);
  EXPECT_EQ(berlin.offset_at(instant("2026-07-15 12:00 +00:00") / 1000).count(), 7200);
  EXPECT_EQ(berlin.offset_at(instant("2026-03-29 00:59 +00:00") / 1000).count(), 3600);
  EXPECT_EQ(berlin.offset_at(instant("2026-03-29 01:00 +00:00") / 1000).count(), 7200);
  const TimeZone lord_howe = TimeZone::load("Australia/Lord_Howe");
  EXPECT_EQ(lord_howe.offset_at(instant("2026-01-15 12:00 +00:00") / 1000).count(), 11 * 3600);
  EXPECT_EQ(lord_howe.offset_at(instant("2026-07-15 12:00 +00:00") / 1000).count(),
            10 * 3600 + 1800);
  EXPECT_EQ(
      TimeZone::load("Asia/Kolkata").offset_at(instant("2050-07-15 12:00 +00:00") / 1000).count(),
      19800);
}

// The offsets agree with the C library's reading of the same files, from
// 1970 to 2100, for zones with unusual rules (negative daylight saving in
// Dublin, half hours, a skipped day in Apia, rules that change often).
TEST(TimeZone, OffsetsAgreeWithTheCLibrary) {
  const char* old_tz = std::getenv("TZ");
  const std::string saved = old_tz ? old_tz : "";
  std::mt19937_64 random(11);
  std::uniform_int_distribution<std::int64_t> instants(0, 4102444800);  // 1970 to 2100
  for (const char* name :
       {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Europe/Dublin",
        "Pacific/Apia", "America/Sao_Paulo", "Africa/Casablanca", "America/St_Johns",
        "Pacific/Chatham", "Asia/Tehran", "Antarctica/Troll"}) {
    const TimeZone zone = TimeZone::load(name);
    setenv("TZ", name, 1);
    tzset();
    for (int i = 0; i < 3000; ++i) {
      const std::time_t at =
          i < 2000 ? instants(random) : 1'700'000'000 + std::int64_t{i} * 86'400 * 23 / 7;
      std::tm fields{};
      localtime_r(&at, &fields);
      ASSERT_EQ(zone.offset_at(at).count(), fields.tm_gmtoff) << name << " at " << at;
    }
  }
  if (old_tz)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
}

TEST(TimeZone, UnknownNamesAreRefused) {
  for (const std::string name :
       {"Europe/Nowhere", "../../etc/passwd", "/etc/localtime", "Europe/../UTC", "Europe/./Berlin",
        "Europe//Berlin", "", "Europe", "Europe/", "zone.tab", "tzdata.zi", "Europe/Berlin ",
        "Europe/Berlin/"}) {
    try {
      TimeZone::load(name);
      ADD_FAILURE() << "loaded " << name;
    } catch (const CronError& error) {
      EXPECT_EQ(error.what(), "unknown time zone: " + name);
    }
  }
  try {
    TimeZone::load("Europe/Berlin\n");
    ADD_FAILURE();
  } catch (const CronError& error) {
    EXPECT_STREQ(error.what(), "unknown time zone: Europe/Berlin\\x0a");
  }
}

// --- TimeZone from crafted TZif files

struct Tzif {
  char version = '2';
  std::vector<std::int64_t> times;
  std::vector<std::uint8_t> indices;
  std::vector<std::int32_t> offsets{0};
  std::string footer = "";
  std::uint32_t leaps = 0;

  static void put(std::string& out, std::uint64_t value, int size) {
    for (int shift = (size - 1) * 8; shift >= 0; shift -= 8)
      out += static_cast<char>(value >> shift & 0xff);
  }
  void block(std::string& out, int time_size) const {
    out += "TZif";
    out += version;
    out += std::string(15, '\0');
    for (std::uint64_t count : {offsets.size(), offsets.size(), std::size_t{leaps}, times.size(),
                                offsets.size(), std::size_t{4}})
      put(out, count, 4);
    for (std::int64_t time : times) put(out, static_cast<std::uint64_t>(time), time_size);
    for (std::uint8_t index : indices) out += static_cast<char>(index);
    for (std::int32_t offset : offsets) {
      put(out, static_cast<std::uint32_t>(offset), 4);
      out += std::string(2, '\0');
    }
    out += "ABC";
    out += '\0';
    for (std::uint32_t i = 0; i < leaps; ++i) put(out, 0, time_size), put(out, 0, 4);
    out += std::string(offsets.size() * 2, '\0');  // standard and UT indicators
  }
  std::string bytes() const {
    std::string out;
    block(out, 4);
    if (version == '\0') return out;
    block(out, 8);
    return out + "\n" + footer + "\n";
  }
};

std::string refusal(const std::string& bytes) {
  try {
    TimeZone::from_tzif("Test/Zone", bytes);
  } catch (const CronError& error) {
    return error.what();
  }
  return "accepted";
}

TEST(TimeZone, FooterAloneGivesTheOffsets) {
  Tzif file;
  file.offsets = {3600};
  file.footer = "CET-1CEST,M3.5.0,M10.5.0/3";
  const TimeZone zone = TimeZone::from_tzif("Test/Central", file.bytes());
  EXPECT_EQ(zone.name(), "Test/Central");
  EXPECT_EQ(zone.offset_at(instant("2026-03-29 00:59 +00:00") / 1000).count(), 3600);
  EXPECT_EQ(zone.offset_at(instant("2026-03-29 01:00 +00:00") / 1000).count(), 7200);
  EXPECT_EQ(zone.offset_at(instant("2026-10-25 00:59 +00:00") / 1000).count(), 7200);
  EXPECT_EQ(zone.offset_at(instant("2026-10-25 01:00 +00:00") / 1000).count(), 3600);
  EXPECT_EQ(firings("30 2 * * *", "2026-03-28 12:00 +01:00", zone, 2),
            (Strings{"2026-03-29 03:00 +02:00", "2026-03-30 02:30 +02:00"}));
}

TEST(TimeZone, TableThenFooterAndVersionOne) {
  Tzif file;
  file.times = {0, 1000};
  file.indices = {1, 2};
  file.offsets = {-3600, 7200, 3600};
  file.footer = "<+01>-1";
  const TimeZone zone = TimeZone::from_tzif("Test/Table", file.bytes());
  EXPECT_EQ(zone.offset_at(-1).count(), -3600);  // before the first transition: type 0
  EXPECT_EQ(zone.offset_at(0).count(), 7200);
  EXPECT_EQ(zone.offset_at(999).count(), 7200);
  EXPECT_EQ(zone.offset_at(1000).count(), 3600);
  EXPECT_EQ(zone.offset_at(4'000'000'000).count(), 3600);

  file.version = '\0';  // 32-bit times, no footer: the last type holds on
  const TimeZone old = TimeZone::from_tzif("Test/Old", file.bytes());
  EXPECT_EQ(old.offset_at(-1).count(), -3600);
  EXPECT_EQ(old.offset_at(500).count(), 7200);
  EXPECT_EQ(old.offset_at(4'000'000'000).count(), 3600);
}

// POSIX TZ rules of every form agree with the C library's reading of the same string.
TEST(TimeZone, FooterRulesAgreeWithTheCLibrary) {
  const char* old_tz = std::getenv("TZ");
  const std::string saved = old_tz ? old_tz : "";
  std::mt19937_64 random(12);
  std::uniform_int_distribution<std::int64_t> instants(0, 4102444800);
  for (const char* rule :
       {"CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "IST-1GMT0,M10.5.0,M3.5.0/1",
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", "NZST-12NZDT,M9.5.0,M4.1.0/3",
        "XST3XDT,J60/2,J300/2", "XST3XDT,59/2,299/2", "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
        "AAA+3:30BBB+2:15,M4.1.1/1:30:15,M9.5.6/23:59:59", "<+0530>-5:30",
        "XST-14XDT-13,M1.1.0/167,M12.5.6/-167"}) {
    Tzif file;
    file.footer = rule;
    const TimeZone zone = TimeZone::from_tzif("Test/Rule", file.bytes());
    setenv("TZ", rule, 1);
    tzset();
    for (int i = 0; i < 3000; ++i) {
      const std::time_t at = instants(random);
      std::tm fields{};
      localtime_r(&at, &fields);
      ASSERT_EQ(zone.offset_at(at).count(), fields.tm_gmtoff) << rule << " at " << at;
    }
  }
  if (old_tz)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
}

// RFC 8536 3.3.1: daylight time from January 1 00:00 to December 31 24:00
// (in daylight time) is daylight time all year, also around New Year. (The C
// library reads the year's boundary hours as standard time.)
TEST(TimeZone, DaylightTimeAllYear) {
  Tzif file;
  file.footer = "EST5EDT,0/0,J365/25";
  const TimeZone zone = TimeZone::from_tzif("Test/AllYear", file.bytes());
  for (const char* at :
       {"2037-01-01 00:00 +00:00", "2037-01-01 03:59 +00:00", "2037-01-01 04:00 +00:00",
        "2037-07-01 00:00 +00:00", "2036-12-31 23:59 +00:00", "2040-01-01 02:00 +00:00"})
    EXPECT_EQ(zone.offset_at(instant(at) / 1000).count(), -4 * 3600) << at;
  EXPECT_EQ(
      firings("0 * * * *", "2036-12-31 22:30 -04:00", zone, 3),
      (Strings{"2036-12-31 23:00 -04:00", "2037-01-01 00:00 -04:00", "2037-01-01 01:00 -04:00"}));
}

TEST(TimeZone, DamagedFilesAreRefused) {
  Tzif good;
  good.times = {0, 1000};
  good.indices = {1, 0};
  good.offsets = {0, 3600};
  good.footer = "CET-1CEST,M3.5.0,M10.5.0/3";
  const std::string bytes = good.bytes();
  EXPECT_EQ(refusal(bytes), "accepted");
  // Every shorter prefix is refused, never read past.
  for (std::size_t size = 0; size < bytes.size(); ++size)
    EXPECT_NE(refusal(bytes.substr(0, size)), "accepted") << size;
  EXPECT_EQ(refusal(bytes.substr(0, 40)), R"(time zone "Test/Zone": damaged TZif file: truncated)");
  EXPECT_EQ(refusal(bytes.substr(0, bytes.size() - 1)),
            R"(time zone "Test/Zone": damaged TZif file: no footer)");

  const auto damaged = [](const Tzif& file) { return refusal(file.bytes()); };
  Tzif file = good;
  file.version = '5';
  EXPECT_EQ(damaged(file), R"(time zone "Test/Zone": damaged TZif file: unknown version)");
  file = good;
  file.offsets = {};
  file.indices = {};
  file.times = {};
  EXPECT_EQ(damaged(file),
            R"(time zone "Test/Zone": damaged TZif file: bad type or character count)");
  file = good;
  file.indices = {1, 2};
  EXPECT_EQ(damaged(file),
            R"(time zone "Test/Zone": damaged TZif file: transition type out of range)");
  file = good;
  file.times = {1000, 0};
  EXPECT_EQ(damaged(file),
            R"(time zone "Test/Zone": damaged TZif file: transition times out of order)");
  file.times = {1000, 1000};
  EXPECT_EQ(damaged(file),
            R"(time zone "Test/Zone": damaged TZif file: transition times out of order)");
  file = good;
  file.offsets = {0, 26 * 3600};
  EXPECT_EQ(damaged(file), R"(time zone "Test/Zone": damaged TZif file: UTC offset out of range)");
  file = good;
  file.leaps = 1;
  EXPECT_EQ(damaged(file), R"(time zone "Test/Zone": leap-second files are not supported)");
  for (const char* footer :
       {"CET", "CE-1", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.0.0,M10.5.0",
        "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,J0,J5", "CET-1CEST,366,5", "<AB>-1", "<ABC-1",
        "CET-25", "CET-1CEST,M3.5.0/168,M10.5.0", "CET-1 ", "CET-1CEST,", "1CET"}) {
    file = good;
    file.footer = footer;
    EXPECT_EQ(damaged(file), R"(time zone "Test/Zone": damaged TZif file: bad footer)") << footer;
  }
  std::string huge = bytes;
  huge.resize((1 << 20) + 1, '\0');
  EXPECT_EQ(refusal(huge), R"(time zone "Test/Zone": damaged TZif file: larger than 1 MiB)");
  EXPECT_EQ(refusal("TZjf" + bytes.substr(4)),
            R"(time zone "Test/Zone": damaged TZif file: no TZif header)");
  // A header whose counts promise more than the file holds.
  std::string lying = bytes;
  lying[32] = '\x7f';  // the transition count of the first header
  EXPECT_EQ(refusal(lying), R"(time zone "Test/Zone": damaged TZif file: truncated)");
}

// --- properties over many random schedules

std::string random_field(std::mt19937_64& random, int min, int max,
                         const std::vector<std::string>& names) {
  const auto pick = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  const int last = names.size() == 7 ? 6 : max;
  const auto value = [&](int number) {
    if (!names.empty() && number - min < static_cast<int>(names.size()) && pick(0, 2) == 0)
      return names[number - min];
    return std::to_string(number);
  };
  const auto item = [&]() -> std::string {
    const int low = pick(min, last), high = pick(low, last), step = pick(1, last - min);
    switch (pick(0, 5)) {
      case 0:
        return "*";
      case 1:
        return "*/" + std::to_string(step);
      case 2:
        return value(low);
      case 3:
        return value(low) + "-" + value(high);
      case 4:
        return value(low) + "-" + value(high) + "/" + std::to_string(step);
      default:
        return value(low) + "/" + std::to_string(step);
    }
  };
  std::string field = item();
  for (int more = pick(0, 3) == 0 ? pick(1, 2) : 0; more > 0; --more) field += "," + item();
  return field;
}

std::string random_expression(std::mt19937_64& random) {
  static const std::vector<std::string> months{"jan", "feb", "mar", "apr", "may", "jun",
                                               "jul", "aug", "sep", "oct", "nov", "dec"};
  static const std::vector<std::string> weekdays{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  // Half of them run every day, so that clock changes are met often.
  if (random() % 2 == 0)
    return random_field(random, 0, 59, {}) + " " +
           (random() % 2 ? "*" : random_field(random, 0, 23, {})) + " * * *";
  return random_field(random, 0, 59, {}) + " " + random_field(random, 0, 23, {}) + " " +
         random_field(random, 1, 31, {}) + " " + random_field(random, 1, 12, months) + " " +
         random_field(random, 0, 7, weekdays);
}

// Reference: walk UTC minute by minute. A matching local minute fires the
// first time the clock shows it or a later time; every zone here changes
// offset on whole minutes.
std::optional<std::int64_t> stepped_next(const CronSchedule& schedule, const TimeZone& zone,
                                         std::int64_t after, int minutes) {
  const auto shown = [&](std::int64_t t) { return t + zone.offset_at(t).count(); };
  std::int64_t minute = (after / 60 + 1) * 60;
  std::int64_t not_shown = 0;  // every local time below this was shown before `minute`
  for (std::int64_t t = minute - 27 * 3600; t < minute; t += 60)
    not_shown = std::max(not_shown, shown(t) + 60);
  for (int i = 0; i < minutes; ++i, minute += 60) {
    for (std::int64_t local_time = not_shown; local_time <= shown(minute); local_time += 60)
      if (matches_local(schedule, local_time)) return minute * 1000;
    not_shown = std::max(not_shown, shown(minute) + 60);
  }
  return std::nullopt;
}

const std::vector<TimeZone>& zones() {
  static const std::vector<TimeZone> all{
      TimeZone::utc(), TimeZone::load("Europe/Berlin"), TimeZone::load("America/New_York"),
      TimeZone::load("Australia/Lord_Howe"), TimeZone::load("Asia/Kolkata")};
  return all;
}

// Clock changes of the zones above: Berlin, New York, Lord Howe, in 2026 and 2041.
const std::vector<const char*> clock_changes{"2026-03-29 01:00 +00:00", "2026-10-25 01:00 +00:00",
                                             "2026-03-08 07:00 +00:00", "2026-11-01 06:00 +00:00",
                                             "2026-04-04 15:00 +00:00", "2026-10-03 15:30 +00:00",
                                             "2041-03-31 01:00 +00:00", "2041-10-27 01:00 +00:00",
                                             "2041-03-10 07:00 +00:00", "2041-11-03 06:00 +00:00"};

TEST(CronProperties, RandomSchedulesFireInOrderOnMatchingLocalMinutes) {
  std::mt19937_64 random(2026);
  std::uniform_int_distribution<std::int64_t> instants(631152000, 2871763200);  // 1990 to 2061
  int gap_firings = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string expression = random_expression(random);
    const CronSchedule schedule = CronSchedule::parse(expression);
    const TimeZone& zone = zones()[random() % zones().size()];
    // A quarter of the searches start a few hours before a clock change.
    std::int64_t after = i % 4 == 0
                             ? instant(clock_changes[random() % clock_changes.size()]) -
                                   static_cast<std::int64_t>(random() % (4 * 3600)) * 1000
                             : instants(random) * 1000 + static_cast<std::int64_t>(random() % 1000);
    for (int n = 0; n < 5; ++n) {
      const std::optional<std::int64_t> next = schedule.next_after(after, zone);
      if (!next) break;
      ASSERT_GT(*next, after) << expression;
      const std::int64_t at = *next / 1000;
      const std::int64_t shown = at + zone.offset_at(at).count();
      ASSERT_EQ(shown % 60, 0) << expression;
      if (!matches_local(schedule, shown)) {
        // Only at the end of a gap, for a matching minute inside it.
        const std::int64_t before = at - 1 + zone.offset_at(at - 1).count() + 1;
        ASSERT_LT(before, shown) << expression << " at " << local(*next, zone);
        bool skipped_match = false;
        for (std::int64_t t = (before + 59) / 60 * 60; t < shown; t += 60)
          skipped_match |= matches_local(schedule, t);
        ASSERT_TRUE(skipped_match) << expression << " at " << local(*next, zone);
        ++gap_firings;
      }
      after = *next;
    }
  }
  EXPECT_GT(gap_firings, 0);
}

TEST(CronProperties, RandomSchedulesAgreeWithAMinuteByMinuteWalkAroundClockChanges) {
  std::mt19937_64 random(7);
  int compared = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string expression = random_expression(random);
    const CronSchedule schedule = CronSchedule::parse(expression);
    const TimeZone& zone = zones()[1 + random() % (zones().size() - 1)];
    const std::int64_t change = instant(clock_changes[random() % clock_changes.size()]);
    std::int64_t after =
        change - static_cast<std::int64_t>(random() % (6 * 3600)) * 1000 + 3 * 3600 * 1000;
    for (int n = 0; n < 3; ++n) {
      const std::optional<std::int64_t> next = schedule.next_after(after, zone);
      const std::optional<std::int64_t> expected =
          stepped_next(schedule, zone, after / 1000, 2 * 24 * 60);
      if (expected) {
        ASSERT_EQ(next, expected) << expression << " in " << zone.name() << " after "
                                  << local(after, zone);
        ++compared;
      } else {
        ASSERT_TRUE(!next || *next > after + 2 * 86'400'000 - 60'000) << expression;
        break;
      }
      after = *next;
    }
  }
  EXPECT_GT(compared, 300);
}

}  // namespace
}  // namespace ferry::sched
