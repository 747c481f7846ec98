#include "server/queue_settings.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <charconv>

#include "server/json_fields.hpp"

namespace ferry::server {

namespace json = boost::json;
using namespace json_fields;

namespace {

constexpr std::uint32_t kMaxLimit = 1'000'000;

std::uint32_t limit_of(const json::value& value, const Path& path, std::uint32_t low) {
  return static_cast<std::uint32_t>(
      integer_of(value, path, static_cast<int>(low), static_cast<int>(kMaxLimit)));
}

}  // namespace

sched::Rate parse_rate(std::string_view text) {
  std::size_t slash = std::min(text.find('/'), text.size());
  std::uint32_t count = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + slash, count);
  std::string_view unit = text.substr(std::min(slash + 1, text.size()));
  sched::Rate rate{count, sched::Time{0}};
  if (unit == "s")
    rate.per = sched::Time{1000};
  else if (unit == "m")
    rate.per = sched::Time{60'000};
  else if (unit == "h")
    rate.per = sched::Time{3'600'000};
  if (error != std::errc{} || end != text.data() + slash || slash == text.size() ||
      rate.per.count() == 0)
    throw SpecError("must be like 50/s, 10/m or 100/h");
  if (count < 1 || count > kMaxLimit)
    throw SpecError(fmt::format("must start from 1 to {} jobs per period", kMaxLimit));
  return rate;
}

std::string rate_text(const sched::Rate& rate) {
  char unit = rate.per.count() == 1000 ? 's' : rate.per.count() == 60'000 ? 'm' : 'h';
  return fmt::format("{}/{}", rate.count, unit);
}

QueueSettings patch_queue_settings(std::string_view text, QueueSettings settings) {
  json::value document = parse_document(text);
  Fields fields(document, "");
  if (const json::value* paused = fields.take("paused"))
    settings.paused = bool_of(*paused, "paused");
  if (const json::value* max = fields.take("max_running"))
    settings.max_running =
        max->is_null() ? std::nullopt : std::optional(limit_of(*max, "max_running", 1));
  if (const json::value* rate = fields.take("rate")) {
    if (rate->is_null()) {
      settings.rate.reset();
    } else {
      std::string given = string_of(*rate, "rate", 32);
      try {
        settings.rate = parse_rate(given);
      } catch (const SpecError& error) {
        fail("rate", error.what());
      }
    }
  }
  if (const json::value* burst = fields.take("burst"))
    settings.burst = limit_of(*burst, "burst", 0);
  if (const json::value* limit = fields.take("concurrency_limit"))
    settings.per_key = limit_of(*limit, "concurrency_limit", 1);
  fields.reject_unknown();
  return settings;
}

std::string to_json(const QueueSettings& settings) {
  return json::serialize(settings_object(settings));
}

json::object settings_object(const QueueSettings& settings) {
  return json::object{
      {"paused", settings.paused},
      {"max_running", settings.max_running ? json::value(*settings.max_running) : nullptr},
      {"rate", settings.rate ? json::value(rate_text(*settings.rate)) : nullptr},
      {"burst", settings.burst},
      {"concurrency_limit", settings.per_key}};
}

}  // namespace ferry::server
