#include "sched/cron.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <fstream>
#include <iterator>

namespace ferry::sched {
namespace {

constexpr std::int64_t day_seconds = 86400;
constexpr std::size_t max_tzif_bytes = 1 << 20;
// RFC 8536 bounds a UTC offset to -24:59:59 ... +25:59:59; next_after relies on it.
constexpr std::int32_t min_offset = -89999, max_offset = 93599;
// The calendar arithmetic covers the years 1 to 9999; instants beyond are clamped.
constexpr std::int64_t first_instant = -62135596800, last_instant = 253402300799;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

// Calendar days: the count of days since 1970-01-01 and the civil date.
namespace chrono = std::chrono;

std::int64_t to_days(std::int64_t year, int month, int day) {
  const chrono::year_month_day date{chrono::year{static_cast<int>(year)},
                                    chrono::month{static_cast<unsigned>(month)},
                                    chrono::day{static_cast<unsigned>(day)}};
  return chrono::sys_days{date}.time_since_epoch().count();
}

chrono::year_month_day from_days(std::int64_t days) {
  return chrono::year_month_day{chrono::sys_days{chrono::days{days}}};
}

int days_in_month(std::int64_t year, int month) {
  const chrono::year_month_day_last last{
      chrono::year{static_cast<int>(year)},
      chrono::month_day_last{chrono::month{static_cast<unsigned>(month)}}};
  return static_cast<int>(static_cast<unsigned>(last.day()));
}

int weekday(std::int64_t days) {  // Sunday 0
  return static_cast<int>(chrono::weekday{chrono::sys_days{chrono::days{days}}}.c_encoding());
}

std::int64_t year_of(std::int64_t unix_seconds) {
  return static_cast<int>(from_days(floor_div(unix_seconds, day_seconds)).year());
}

// Text as it goes into a one-line message: control bytes escaped, cut short.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 100)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\')
      out += fmt::format("\\{}", c);
    else if (byte < 0x20 || byte >= 0x7f)
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return text.size() > 100 ? out + "..." : out;
}

std::string quoted(std::string_view text) { return "\"" + printable(text) + "\""; }

CronError unknown_zone(std::string_view name) {
  return CronError("unknown time zone: " + printable(name));
}

// A tz database name: relative, no "." or ".." parts, only the characters
// the database uses, so it can never leave the zoneinfo directory.
bool is_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+' && c != '.')
      return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

// Reads TZif files (RFC 8536) and the POSIX TZ strings of their footers.
struct TzifReader {
  std::string_view name;
  std::string_view bytes;
  std::size_t pos = 0;

  CronError damaged(std::string_view why) const {
    return CronError(fmt::format("time zone {}: damaged TZif file: {}", quoted(name), why));
  }
  std::string_view take(std::uint64_t count) {
    if (count > bytes.size() - pos) throw damaged("truncated");
    const std::string_view out = bytes.substr(pos, count);
    pos += count;
    return out;
  }
  std::int64_t big_endian(std::size_t size) {
    std::uint64_t value = 0;
    for (char c : take(size)) value = value << 8 | static_cast<unsigned char>(c);
    if (size == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(value));
    return static_cast<std::int64_t>(value);
  }

  struct Counts {
    std::uint64_t utc_flags, standard_flags, leaps, times, types, chars;
  };
  Counts header() {
    if (take(4) != "TZif") throw damaged("no TZif header");
    take(16);  // version and reserved bytes
    Counts c{};
    for (std::uint64_t* count :
         {&c.utc_flags, &c.standard_flags, &c.leaps, &c.times, &c.types, &c.chars})
      *count = static_cast<std::uint32_t>(big_endian(4));
    return c;
  }
  static std::uint64_t block_size(const Counts& c, std::uint64_t time_size) {
    return c.times * (time_size + 1) + c.types * 6 + c.chars + c.leaps * (time_size + 4) +
           c.standard_flags + c.utc_flags;
  }

  // One data block: transition times of `time_size` bytes, their types, the types.
  void block(const Counts& c, std::size_t time_size, TimeZone& zone) {
    if (c.types == 0 || c.types > 256 || c.chars == 0) throw damaged("bad type or character count");
    if ((c.utc_flags != 0 && c.utc_flags != c.types) ||
        (c.standard_flags != 0 && c.standard_flags != c.types))
      throw damaged("bad indicator count");
    // Files of the right/ tree count leap seconds in their timestamps.
    if (c.leaps != 0)
      throw CronError(
          fmt::format("time zone {}: leap-second files are not supported", quoted(name)));
    if (block_size(c, time_size) > bytes.size() - pos) throw damaged("truncated");
    std::vector<std::int64_t> times(c.times);
    for (auto& time : times) time = big_endian(time_size);
    if (!std::is_sorted(times.begin(), times.end()) ||
        std::adjacent_find(times.begin(), times.end()) != times.end())
      throw damaged("transition times out of order");
    const std::string_view indices = take(c.times);
    std::vector<std::int32_t> offsets(c.types);
    for (auto& offset : offsets) {
      const std::int64_t value = big_endian(4);
      take(2);  // is-daylight flag, abbreviation index
      if (value < min_offset || value > max_offset) throw damaged("UTC offset out of range");
      offset = static_cast<std::int32_t>(value);
    }
    take(c.chars + c.standard_flags + c.utc_flags);
    zone.initial_offset_ = offsets[0];
    zone.transitions_.clear();
    for (std::size_t i = 0; i < times.size(); ++i) {
      const auto type = static_cast<unsigned char>(indices[i]);
      if (type >= c.types) throw damaged("transition type out of range");
      zone.transitions_.push_back({times[i], offsets[type]});
    }
  }

  // --- POSIX TZ strings: std offset [dst [offset] [,start[/time],end[/time]]]

  bool at(char c) const { return pos < bytes.size() && bytes[pos] == c; }
  bool digit() const {
    return pos < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[pos]));
  }
  int number(int max) {
    if (!digit()) throw damaged("bad footer");
    int value = 0;
    while (digit()) {
      value = value * 10 + (bytes[pos++] - '0');
      if (value > max) throw damaged("bad footer");
    }
    return value;
  }
  bool abbreviation() {
    const std::size_t start = pos;
    if (at('<')) {
      while (++pos < bytes.size() &&
             (std::isalnum(static_cast<unsigned char>(bytes[pos])) || at('+') || at('-'))) {
      }
      if (!at('>') || pos - start < 4) throw damaged("bad footer");
      ++pos;
      return true;
    }
    while (pos < bytes.size() && std::isalpha(static_cast<unsigned char>(bytes[pos]))) ++pos;
    if (pos != start && pos - start < 3) throw damaged("bad footer");
    return pos != start;
  }
  // [+-]hh[:mm[:ss]] in seconds.
  std::int64_t duration(int max_hours) {
    const int sign = at('-') ? -1 : 1;
    if (at('-') || at('+')) ++pos;
    std::int64_t seconds = number(max_hours) * 3600;
    if (at(':')) ++pos, seconds += number(59) * 60;
    if (at(':')) ++pos, seconds += number(59);
    return sign * seconds;
  }
  TimeZone::RuleDate rule_date() {
    TimeZone::RuleDate date;
    if (at('J')) {
      ++pos, date.kind = 'J', date.day = number(365);
      if (date.day < 1) throw damaged("bad footer");
    } else if (at('M')) {
      ++pos, date.kind = 'M', date.month = number(12);
      if (!at('.')) throw damaged("bad footer");
      ++pos, date.week = number(5);
      if (!at('.')) throw damaged("bad footer");
      ++pos, date.weekday = number(6);
      if (date.month < 1 || date.week < 1) throw damaged("bad footer");
    } else {
      date.kind = 'D', date.day = number(365);
    }
    if (at('/')) ++pos, date.time = duration(167);
    return date;
  }
  std::optional<TimeZone::PosixRule> posix_rule() {
    if (pos == bytes.size()) return std::nullopt;  // an empty footer: no rule
    TimeZone::PosixRule rule;
    if (!abbreviation()) throw damaged("bad footer");
    rule.standard_offset =
        static_cast<std::int32_t>(-duration(24));  // POSIX counts west as positive
    if (abbreviation()) {
      rule.daylight_offset = rule.standard_offset + 3600;
      if (pos < bytes.size() && !at(','))
        rule.daylight_offset = static_cast<std::int32_t>(-duration(24));
      rule.daylight_start = {.kind = 'M', .month = 3, .week = 2, .weekday = 0};  // POSIX's default
      rule.daylight_end = {.kind = 'M', .month = 11, .week = 1, .weekday = 0};
      if (at(',')) {
        ++pos, rule.daylight_start = rule_date();
        if (!at(',')) throw damaged("bad footer");
        ++pos, rule.daylight_end = rule_date();
      }
    }
    if (pos != bytes.size()) throw damaged("bad footer");
    return rule;
  }
};

TimeZone TimeZone::utc() {
  TimeZone zone;
  zone.name_ = "UTC";
  return zone;
}

TimeZone TimeZone::load(std::string_view name) { return load(name, "/usr/share/zoneinfo"); }

TimeZone TimeZone::load(std::string_view name, const std::filesystem::path& directory) {
  if (name == "UTC") return utc();
  if (!is_zone_name(name)) throw unknown_zone(name);
  const std::filesystem::path path = directory / name;
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) throw unknown_zone(name);
  std::ifstream file(path, std::ios::binary);
  std::string bytes(max_tzif_bytes + 1, '\0');
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<std::size_t>(file.gcount()));
  if (file.bad() || !bytes.starts_with("TZif")) throw unknown_zone(name);  // zone.tab and the like
  return from_tzif(std::string(name), bytes);
}

TimeZone TimeZone::from_tzif(std::string name, std::string_view bytes) {
  TimeZone zone;
  zone.name_ = std::move(name);
  TzifReader reader{zone.name_, bytes};
  if (bytes.size() > max_tzif_bytes) throw reader.damaged("larger than 1 MiB");
  const TzifReader::Counts first = reader.header();
  const char version = bytes[4];
  if (version != '\0' && version != '2' && version != '3' && version != '4')
    throw reader.damaged("unknown version");
  if (version == '\0') {
    reader.block(first, 4, zone);
    return zone;
  }
  // Version 2 and later repeat the data with 64-bit times, then the footer.
  reader.take(TzifReader::block_size(first, 4));
  reader.block(reader.header(), 8, zone);
  if (!reader.at('\n')) throw reader.damaged("no footer");
  const std::size_t end = bytes.find('\n', reader.pos + 1);
  if (end == std::string_view::npos) throw reader.damaged("no footer");
  TzifReader footer{zone.name_, bytes.substr(reader.pos + 1, end - reader.pos - 1)};
  zone.rule_ = footer.posix_rule();
  return zone;
}

bool TimeZone::rule_applies(std::int64_t unix_seconds) const {
  return rule_ && (transitions_.empty() || unix_seconds >= transitions_.back().at);
}

// A rule's two changes in one year: to daylight time (the date and time
// given in standard time) and back (given in daylight time).
std::array<TimeZone::Transition, 2> TimeZone::rule_transitions(std::int64_t year) const {
  const auto day_of = [year](const RuleDate& date) -> std::int64_t {
    const std::int64_t january_first = to_days(year, 1, 1);
    const bool leap = chrono::year{static_cast<int>(year)}.is_leap();
    if (date.kind == 'J') return january_first + date.day - 1 + (leap && date.day >= 60);
    if (date.kind == 'D') return january_first + date.day;
    const std::int64_t first = to_days(year, date.month, 1);
    int day = (date.weekday - weekday(first) + 7) % 7 + (date.week - 1) * 7;
    while (day >= days_in_month(year, date.month)) day -= 7;  // week 5: the last one
    return first + day;
  };
  const PosixRule& rule = *rule_;
  return {
      {{day_of(rule.daylight_start) * day_seconds + rule.daylight_start.time - rule.standard_offset,
        *rule.daylight_offset},
       {day_of(rule.daylight_end) * day_seconds + rule.daylight_end.time - *rule.daylight_offset,
        rule.standard_offset}}};
}

std::int32_t TimeZone::rule_offset(std::int64_t unix_seconds) const {
  if (!rule_->daylight_offset) return rule_->standard_offset;
  // The latest change at or before the instant, from the years around it.
  // Of two at the same instant (daylight time all year), the later year's wins.
  const std::int64_t year = year_of(unix_seconds);
  std::optional<Transition> latest;
  for (std::int64_t y = year - 1; y <= year + 1; ++y)
    for (const Transition& change : rule_transitions(y))
      if (change.at <= unix_seconds && (!latest || change.at >= latest->at)) latest = change;
  return latest ? latest->offset : rule_->standard_offset;
}

std::chrono::seconds TimeZone::offset_at(std::int64_t unix_seconds) const {
  unix_seconds = std::clamp(unix_seconds, first_instant, last_instant);
  if (rule_applies(unix_seconds)) return std::chrono::seconds(rule_offset(unix_seconds));
  if (transitions_.empty() || unix_seconds < transitions_.front().at)
    return std::chrono::seconds(initial_offset_);
  const auto after =
      std::upper_bound(transitions_.begin(), transitions_.end(), unix_seconds,
                       [](std::int64_t t, const Transition& change) { return t < change.at; });
  return std::chrono::seconds(std::prev(after)->offset);
}

std::optional<std::int64_t> TimeZone::next_transition(std::int64_t unix_seconds) const {
  if (!rule_applies(unix_seconds)) {
    const auto after =
        std::upper_bound(transitions_.begin(), transitions_.end(), unix_seconds,
                         [](std::int64_t t, const Transition& change) { return t < change.at; });
    if (after != transitions_.end()) return after->at;
    if (!rule_) return std::nullopt;
  }
  if (!rule_->daylight_offset) return std::nullopt;
  const std::int64_t year = year_of(unix_seconds);
  std::optional<std::int64_t> next;
  for (std::int64_t y = year - 1; y <= year + 1; ++y)
    for (const Transition& change : rule_transitions(y))
      if (change.at > unix_seconds && (!next || change.at < *next)) next = change.at;
  return next;
}

std::int64_t TimeZone::first_instant_showing(std::int64_t local_seconds) const {
  local_seconds = std::clamp(local_seconds, first_instant, last_instant);
  // Walk the stretches of constant offset from a day and more before (no
  // offset reaches 27 hours); in each, the clock shows t + offset.
  std::int64_t stretch_start = local_seconds - 27 * 3600;
  for (;;) {
    const std::int64_t offset = offset_at(stretch_start).count();
    const std::optional<std::int64_t> stretch_end = next_transition(stretch_start);
    const std::int64_t instant = std::max(stretch_start, local_seconds - offset);
    if (!stretch_end || instant < *stretch_end) return instant;
    stretch_start = *stretch_end;
  }
}

// --- cron expressions

namespace {

struct Field {
  const char* name;
  int min, max;
  const char* kind;        // what a value is, for messages
  std::string_view names;  // three letters each, for min, min + 1, ...
};
constexpr Field fields[] = {
    {"minute", 0, 59, "number", ""},
    {"hour", 0, 23, "number", ""},
    {"day-of-month", 1, 31, "number", ""},
    {"month", 1, 12, "month (1-12 or jan-dec)", "janfebmaraprmayjunjulaugsepoctnovdec"},
    {"day-of-week", 0, 7, "weekday (0-7 or sun-sat)", "sunmontuewedthufrisat"},
};

struct FieldError {
  std::string message;
};

int field_value(const Field& field, std::string_view text) {
  if (!text.empty() &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const std::string_view digits =
        text.substr(std::min(text.find_first_not_of('0'), text.size() - 1));
    int value = 0;
    for (char c : digits.substr(0, 4)) value = value * 10 + (c - '0');
    if (digits.size() > 4 || value < field.min || value > field.max)
      throw FieldError{fmt::format("{} is not in {}-{}", text, field.min, field.max)};
    return value;
  }
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (std::size_t i = 0; lower.size() == 3 && i < field.names.size(); i += 3)
    if (field.names.substr(i, 3) == lower) return field.min + static_cast<int>(i / 3);
  throw FieldError{fmt::format("{} is not a {}", quoted(text), field.kind)};
}

// One field: a comma list of *, n, a-b, */n, a-b/n, a/n. Bit n is value n.
std::uint64_t field_mask(const Field& field, std::string_view text) {
  const bool weekdays = field.max == 7;  // 7 is Sunday again
  const int last = weekdays ? 6 : field.max;
  std::uint64_t mask = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, end - start);
    start = end + 1;
    if (item.empty()) throw FieldError{fmt::format("empty list item in {}", quoted(text))};
    const std::size_t slash = item.find('/');
    const std::string_view base = item.substr(0, slash);
    const std::size_t dash = base.find('-');
    const auto malformed = [&] {
      return FieldError{fmt::format("{} is not a value, range or step", quoted(item))};
    };
    if (item.find('/', slash + 1) != std::string_view::npos ||
        base.find('-', dash + 1) != std::string_view::npos ||
        (dash != std::string_view::npos && (dash == 0 || dash + 1 == base.size())))
      throw malformed();
    int low = field.min, high = last, step = 1;
    if (slash != std::string_view::npos) {
      const std::string_view step_text = item.substr(slash + 1);
      if (step_text.empty() || step_text.find_first_not_of("0123456789") != std::string_view::npos)
        throw malformed();
      const int span = last - field.min;
      step = step_text.size() > 4 ? span + 1 : std::stoi(std::string(step_text));
      if (step < 1 || step > span)
        throw FieldError{fmt::format("step {} is not in 1-{}", step_text, span)};
    }
    if (base != "*") {
      if (dash == std::string_view::npos) {
        low = field_value(field, base);
        high = slash == std::string_view::npos ? low : last;  // a/n runs to the field's end
      } else {
        low = field_value(field, base.substr(0, dash));
        high = field_value(field, base.substr(dash + 1));
        if (low > high) throw FieldError{fmt::format("{} is a backwards range", quoted(base))};
      }
    }
    for (int value = low; value <= high; value += step)
      mask |= std::uint64_t{1} << (weekdays ? value % 7 : value);
  }
  return mask;
}

std::string_view macro(std::string_view word) {
  std::string lower(word);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower == "@yearly" || lower == "@annually") return "0 0 1 1 *";
  if (lower == "@monthly") return "0 0 1 * *";
  if (lower == "@weekly") return "0 0 * * 0";
  if (lower == "@daily" || lower == "@midnight") return "0 0 * * *";
  if (lower == "@hourly") return "0 * * * *";
  return {};
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while ((start = text.find_first_not_of(" \t", start)) != std::string_view::npos) {
    const std::size_t end = std::min(text.find_first_of(" \t", start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

// The lowest set bit at or above `from`, or -1.
int next_bit(std::uint64_t mask, int from) {
  const std::uint64_t rest = from >= 64 ? 0 : mask & (~std::uint64_t{0} << from);
  return rest ? std::countr_zero(rest) : -1;
}

}  // namespace

CronSchedule CronSchedule::parse(std::string_view expression) {
  const auto refuse = [&](std::string_view why) {
    return CronError(fmt::format("cron {}: {}", quoted(expression), why));
  };
  std::vector<std::string_view> parts = words(expression);
  if (!parts.empty() && parts[0].starts_with('@')) {
    const std::string_view fields_text = macro(parts[0]);
    if (fields_text.empty())
      throw refuse(
          fmt::format("unknown macro {} (known: @yearly @annually @monthly @weekly @daily "
                      "@midnight @hourly)",
                      quoted(parts[0])));
    if (parts.size() != 1) throw refuse(fmt::format("{} takes no fields", parts[0]));
    parts = words(fields_text);
  }
  if (parts.size() != 5)
    throw refuse(fmt::format(
        "expected 5 fields (minute hour day-of-month month day-of-week), found {}", parts.size()));
  std::uint64_t masks[5];
  for (int i = 0; i < 5; ++i) {
    try {
      masks[i] = field_mask(fields[i], parts[i]);
    } catch (const FieldError& error) {
      throw refuse(fmt::format("{}: {}", fields[i].name, error.message));
    }
  }
  CronSchedule schedule;
  schedule.expression_ = std::string(expression);
  schedule.minutes_ = masks[0];
  schedule.hours_ = static_cast<std::uint32_t>(masks[1]);
  schedule.days_ = static_cast<std::uint32_t>(masks[2]);
  schedule.months_ = static_cast<std::uint32_t>(masks[3]);
  schedule.weekdays_ = static_cast<std::uint32_t>(masks[4]);
  constexpr std::uint32_t every_day = 0xfffffffe, every_weekday = 0x7f;
  schedule.either_day_ = schedule.days_ != every_day && schedule.weekdays_ != every_weekday;
  return schedule;
}

bool CronSchedule::day_matches(int day, int weekday_number) const {
  const bool day_of_month = days_ >> day & 1, day_of_week = weekdays_ >> weekday_number & 1;
  return either_day_ ? day_of_month || day_of_week : day_of_month && day_of_week;
}

bool CronSchedule::matches(int month, int day, int weekday_number, int hour, int minute) const {
  return (months_ >> month & 1) && day_matches(day, weekday_number) && (hours_ >> hour & 1) &&
         (minutes_ >> minute & 1);
}

std::optional<std::int64_t> CronSchedule::next_after(std::int64_t after_ms,
                                                     const TimeZone& tz) const {
  const std::int64_t after = floor_div(after_ms, 1000);
  if (after < first_instant + day_seconds || after > last_instant - 10 * 366 * day_seconds)
    return std::nullopt;
  // Every local time up to the one shown at `after` was shown by then, so the
  // search starts at the next local minute and walks matching local times
  // upwards; the first one first shown after `after` is the answer.
  const std::int64_t local = (floor_div(after + tz.offset_at(after).count(), 60) + 1) * 60;
  const chrono::year_month_day start = from_days(floor_div(local, day_seconds));
  struct {
    std::int64_t year;
    int month, day;
  } date{static_cast<int>(start.year()), static_cast<int>(static_cast<unsigned>(start.month())),
         static_cast<int>(static_cast<unsigned>(start.day()))};
  const auto second_of_day = static_cast<int>(local - floor_div(local, day_seconds) * day_seconds);
  int hour = second_of_day / 3600, minute = second_of_day % 3600 / 60;
  const std::int64_t last_year = date.year + 9;
  const auto next_month = [&] {
    date.day = 1, hour = minute = 0;
    if (++date.month > 12) date.month = 1, ++date.year;
  };
  const auto next_day = [&] {
    if (date.day == days_in_month(date.year, date.month)) return next_month();
    ++date.day, hour = minute = 0;
  };
  while (date.year <= last_year) {
    if (!(months_ >> date.month & 1)) {
      next_month();
      continue;
    }
    // When the day of month must match, jump to the next one that does.
    if (!either_day_ && !(days_ >> date.day & 1)) {
      const int day = next_bit(days_, date.day);
      if (day < 0 || day > days_in_month(date.year, date.month)) {
        next_month();
        continue;
      }
      date.day = day, hour = minute = 0;
    }
    const std::int64_t days = to_days(date.year, date.month, date.day);
    const int next_hour = next_bit(hours_, hour);
    if (!day_matches(date.day, weekday(days)) || next_hour < 0) {
      next_day();
      continue;
    }
    if (next_hour != hour) hour = next_hour, minute = 0;
    if ((minute = next_bit(minutes_, minute)) < 0) {
      minute = 0;
      if (++hour == 24) next_day();
      continue;
    }
    const std::int64_t fires =
        tz.first_instant_showing(days * day_seconds + hour * 3600 + minute * 60);
    if (fires > after) return fires * 1000;
    if (++minute == 60) {
      minute = 0;
      if (++hour == 24) next_day();
    }
  }
  return std::nullopt;
}

}  // namespace ferry::sched
