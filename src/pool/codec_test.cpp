#include "ferry/codec.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace ferry {
namespace {

struct Point {
  double x = 0, y = 0;
  std::string label;
  std::vector<int> tags;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(x, y, label, tags);
  }
  bool operator==(const Point&) const = default;
};

enum class Color : std::uint8_t { red = 1, blue = 7 };

template <class T>
void round_trip(const T& value) {
  EXPECT_EQ(from_bytes<T>(to_bytes(value)), value);
}

TEST(Codec, ArithmeticAndEnumsExactly) {
  round_trip(42);
  round_trip(-7LL);
  round_trip(std::numeric_limits<std::uint64_t>::max());
  round_trip(0.1 + 0.2);  // bit for bit
  round_trip(true);
  round_trip('x');
  round_trip(Color::blue);
  EXPECT_EQ(to_bytes(std::int32_t{5}).size(), 4u);
}

TEST(Codec, StringsAndContainers) {
  round_trip(std::string("hello\0world", 11));
  round_trip(std::string());
  round_trip(std::vector<int>{1, 2, 3});
  round_trip(std::vector<std::string>{"a", "", "ccc"});
  round_trip(std::vector<bool>{true, false, true});
  round_trip(std::map<std::string, std::vector<double>>{{"a", {1.5}}, {"b", {}}});
  round_trip(std::unordered_map<int, std::string>{{1, "one"}, {2, "two"}});
  round_trip(std::set<int>{3, 1, 2});
  round_trip(std::deque<int>{4, 5});
  round_trip(std::list<std::string>{"x", "y"});
  round_trip(std::array<int, 3>{7, 8, 9});
}

TEST(Codec, OptionalsPairsTuplesVariants) {
  round_trip(std::optional<int>{});
  round_trip(std::optional<std::string>{"set"});
  round_trip(std::pair<int, std::string>{1, "a"});
  round_trip(std::tuple<int, double, std::string>{1, 2.5, "three"});
  round_trip(std::variant<int, std::string>{std::string("text")});
  round_trip(std::variant<int, std::string>{9});
  round_trip(std::vector<std::optional<std::pair<int, int>>>{{{1, 2}}, std::nullopt});
}

TEST(Codec, UserTypesListTheirFields) {
  round_trip(Point{1.5, -2, "origin", {1, 2}});
  round_trip(std::vector<Point>{{}, {3, 4, "p", {}}});
}

TEST(Codec, CorruptOrShortDataIsADecodeError) {
  std::string bytes = to_bytes(std::string("hello"));
  EXPECT_THROW(from_bytes<std::string>(bytes.substr(0, 6)), DecodeError);
  EXPECT_THROW(from_bytes<int>(bytes), DecodeError);  // leftover bytes
  std::string huge_length = to_bytes(std::uint64_t{1} << 60);
  EXPECT_THROW(from_bytes<std::vector<int>>(huge_length), DecodeError);
  EXPECT_THROW((from_bytes<std::variant<int, char>>(to_bytes(std::uint32_t{5}))), DecodeError);
}

static_assert(Transferable<std::map<int, std::vector<Point>>>);
static_assert(!Transferable<std::FILE*>);

}  // namespace
}  // namespace ferry
