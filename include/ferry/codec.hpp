// ferry codec — how values cross a process boundary.
//
// Arguments and results of Pool tasks and the items of a Queue are encoded to
// bytes in one process and decoded in another. The format is compact binary in
// the machine's native byte order: both ends are the same program on the same
// host, so nothing is parsed and doubles round-trip exactly.
//
// Supported out of the box: arithmetic types and enums, std::string, vectors,
// arrays, deques, lists, sets, maps (ordered and unordered), optionals, pairs,
// tuples, variants, and any nesting of them.
//
// A type of your own opts in with a member that lists its fields:
//
//   struct Point {
//     double x, y;
//     std::string label;
//     template <class Fields> void ferry_fields(Fields&& fields) { fields(x, y, label); }
//   };
//
// (it must be default-constructible), or with a specialization
// `template <> struct ferry::Codec<T> { static void encode(Writer&, const T&);
// static T decode(Reader&); };` for full control. Types that have neither are
// rejected at compile time.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "ferry/error.hpp"

namespace ferry {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void write(const void* data, std::size_t size) {
    if (size > 0) out_.append(static_cast<const char*>(data), size);
  }
  void size(std::size_t n) {
    auto value = static_cast<std::uint64_t>(n);
    write(&value, sizeof value);
  }
  void reserve(std::size_t more) { out_.reserve(out_.size() + more); }

 private:
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  void read(void* data, std::size_t size) {
    std::string_view bytes = take(size);
    if (size > 0) std::memcpy(data, bytes.data(), size);  // data may be null when size is 0
  }
  std::string_view take(std::size_t size) {
    if (size > in_.size()) throw DecodeError("ferry codec: the data ends too early");
    std::string_view bytes = in_.substr(0, size);
    in_.remove_prefix(size);
    return bytes;
  }
  std::size_t size() {
    std::uint64_t value = 0;
    read(&value, sizeof value);
    if (value > in_.size() * 8 + 64) throw DecodeError("ferry codec: a length is corrupt");
    return static_cast<std::size_t>(value);
  }
  bool empty() const { return in_.empty(); }
  std::size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

// The customization point: specialize for a type to make it transferable.
template <class T, class Enable = void>
struct Codec;

template <class T>
concept Transferable = requires(Writer& writer, Reader& reader, const T& value) {
  Codec<T>::encode(writer, value);
  { Codec<T>::decode(reader) } -> std::same_as<T>;
};

template <class T>
void encode(Writer& writer, const T& value) {
  static_assert(Transferable<T>,
                "ferry: this type cannot cross a process boundary; give it a ferry_fields member "
                "or a ferry::Codec specialization (see ferry/codec.hpp)");
  Codec<T>::encode(writer, value);
}

template <class T>
T decode(Reader& reader) {
  static_assert(Transferable<T>,
                "ferry: this type cannot cross a process boundary; give it a ferry_fields member "
                "or a ferry::Codec specialization (see ferry/codec.hpp)");
  return Codec<T>::decode(reader);
}

// Whole values to and from bytes.
template <class T>
std::string to_bytes(const T& value) {
  std::string out;
  Writer writer(out);
  encode(writer, value);
  return out;
}

template <class T>
T from_bytes(std::string_view bytes) {
  Reader reader(bytes);
  T value = decode<T>(reader);
  if (!reader.empty()) throw DecodeError("ferry codec: unexpected bytes after the value");
  return value;
}

namespace detail {

template <class T>
struct is_pair_or_tuple : std::false_type {};
template <class A, class B>
struct is_pair_or_tuple<std::pair<A, B>> : std::true_type {};
template <class... Ts>
struct is_pair_or_tuple<std::tuple<Ts...>> : std::true_type {};

// Sequences and associative containers: count, then the elements in order.
template <class Container, class Element = typename Container::value_type>
struct SequenceCodec {
  static void encode(Writer& writer, const Container& items) {
    writer.size(items.size());
    if constexpr (std::is_trivially_copyable_v<Element> && requires { items.data(); }) {
      writer.write(items.data(), items.size() * sizeof(Element));
    } else {
      for (const auto& item : items) ferry::encode(writer, item);
    }
  }
  static Container decode(Reader& reader) {
    std::size_t count = reader.size();
    Container items;
    if constexpr (std::is_trivially_copyable_v<Element> && requires { items.data(); }) {
      items.resize(count);
      reader.read(items.data(), count * sizeof(Element));
    } else {
      for (std::size_t i = 0; i < count; ++i) {
        if constexpr (requires { items.push_back(std::declval<Element>()); })
          items.push_back(ferry::decode<Element>(reader));
        else
          items.insert(ferry::decode<Element>(reader));
      }
    }
    return items;
  }
};

}  // namespace detail

template <class T>
requires(std::is_arithmetic_v<T> || std::is_enum_v<T>) struct Codec<T> {
  static void encode(Writer& writer, T value) { writer.write(&value, sizeof value); }
  static T decode(Reader& reader) {
    T value;
    reader.read(&value, sizeof value);
    return value;
  }
};

template <>
struct Codec<std::string> : detail::SequenceCodec<std::string> {};
template <class T, class A>
struct Codec<std::vector<T, A>> : detail::SequenceCodec<std::vector<T, A>> {};
template <class T, class A>
struct Codec<std::deque<T, A>> : detail::SequenceCodec<std::deque<T, A>> {};
template <class T, class A>
struct Codec<std::list<T, A>> : detail::SequenceCodec<std::list<T, A>> {};
template <class T, class C, class A>
struct Codec<std::set<T, C, A>> : detail::SequenceCodec<std::set<T, C, A>> {};
template <class T, class H, class E, class A>
struct Codec<std::unordered_set<T, H, E, A>>
    : detail::SequenceCodec<std::unordered_set<T, H, E, A>> {};
template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>> : detail::SequenceCodec<std::map<K, V, C, A>, std::pair<K, V>> {
};
template <class K, class V, class H, class E, class A>
struct Codec<std::unordered_map<K, V, H, E, A>>
    : detail::SequenceCodec<std::unordered_map<K, V, H, E, A>, std::pair<K, V>> {};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static void encode(Writer& writer, const std::array<T, N>& items) {
    for (const T& item : items) ferry::encode(writer, item);
  }
  static std::array<T, N> decode(Reader& reader) {
    std::array<T, N> items;
    for (T& item : items) item = ferry::decode<T>(reader);
    return items;
  }
};

template <class T>
struct Codec<std::optional<T>> {
  static void encode(Writer& writer, const std::optional<T>& value) {
    ferry::encode(writer, value.has_value());
    if (value) ferry::encode(writer, *value);
  }
  static std::optional<T> decode(Reader& reader) {
    if (!ferry::decode<bool>(reader)) return std::nullopt;
    return ferry::decode<T>(reader);
  }
};

template <class T>
requires detail::is_pair_or_tuple<T>::value struct Codec<T> {
  static void encode(Writer& writer, const T& value) {
    std::apply([&](const auto&... parts) { (ferry::encode(writer, parts), ...); }, value);
  }
  static T decode(Reader& reader) {
    return decode_parts(reader, std::make_index_sequence<std::tuple_size_v<T>>{});
  }

 private:
  template <std::size_t... I>
  static T decode_parts(Reader& reader, std::index_sequence<I...>) {
    // Braced initialization evaluates left to right, matching encode's order.
    return T{ferry::decode<std::remove_cv_t<std::tuple_element_t<I, T>>>(reader)...};
  }
};

template <class... Ts>
struct Codec<std::variant<Ts...>> {
  static void encode(Writer& writer, const std::variant<Ts...>& value) {
    ferry::encode(writer, static_cast<std::uint32_t>(value.index()));
    std::visit([&](const auto& held) { ferry::encode(writer, held); }, value);
  }
  static std::variant<Ts...> decode(Reader& reader) {
    auto index = ferry::decode<std::uint32_t>(reader);
    if (index >= sizeof...(Ts)) throw DecodeError("ferry codec: a variant index is corrupt");
    return decode_alternative(reader, index, std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static std::variant<Ts...> decode_alternative(Reader& reader, std::uint32_t index,
                                                std::index_sequence<I...>) {
    std::variant<Ts...> result;
    ((index == I ? (result.template emplace<I>(ferry::decode<Ts>(reader)), true) : false) || ...);
    return result;
  }
};

template <>
struct Codec<std::monostate> {
  static void encode(Writer&, const std::monostate&) {}
  static std::monostate decode(Reader&) { return {}; }
};

// Types that list their fields with a ferry_fields member.
template <class T>
requires requires(T& value) {
  value.ferry_fields([](auto&...) {});
}
struct Codec<T> {
  static void encode(Writer& writer, const T& value) {
    // ferry_fields hands out references to read them; nothing is modified.
    const_cast<T&>(value).ferry_fields(
        [&](const auto&... fields) { (ferry::encode(writer, fields), ...); });
  }
  static T decode(Reader& reader) {
    T value{};
    value.ferry_fields([&](auto&... fields) {
      ((fields = ferry::decode<std::remove_cvref_t<decltype(fields)>>(reader)), ...);
    });
    return value;
  }
};

}  // namespace ferry
