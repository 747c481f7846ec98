#include "run/command_template.hpp"

#include <algorithm>
#include <cctype>

#include "run/inputs.hpp"

namespace ferry::run {
namespace {

constexpr std::string_view kModifiers[] = {"", ".", "/", "//", "/."};

bool parse_digits(std::string_view text, int& value) {
  if (text.empty() || text.size() > 6) return false;
  value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  return value > 0;
}

std::string apply(std::string_view modifier, const std::string& value) {
  if (modifier.empty()) return value;
  auto slash = value.rfind('/');
  auto strip_extension = [](std::string path) {
    auto dot = path.rfind('.');
    auto slash_in = path.rfind('/');
    if (dot != std::string::npos && dot > 0 &&
        (slash_in == std::string::npos || dot > slash_in + 1))
      path.erase(dot);
    return path;
  };
  std::string base = slash == std::string::npos ? value : value.substr(slash + 1);
  if (modifier == ".") return strip_extension(value);
  if (modifier == "/") return base;
  if (modifier == "/.") return strip_extension(base);
  // "//": the directory
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : value.substr(0, slash);
}

}  // namespace

std::string shell_quote(const std::string& value) {
  bool plain = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("_-./:=@%+,").find(c) != std::string_view::npos;
  });
  if (plain) return value;
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  return quoted + "'";
}

CommandTemplate::CommandTemplate(const std::vector<std::string>& words, bool shell)
    : shell_(shell) {
  if (words.empty()) {
    inputs_are_commands_ = true;
    return;
  }
  bool has_argument = false;
  for (const std::string& word : words) {
    Word& pieces = words_.emplace_back();
    auto add_text = [&](std::string_view text) {
      if (pieces.empty() || pieces.back().kind != Piece::Kind::text) pieces.emplace_back();
      pieces.back().text += text;
    };
    std::size_t i = 0;
    while (i < word.size()) {
      std::size_t open = word.find('{', i);
      std::size_t close = open == std::string::npos ? open : word.find('}', open);
      if (close == std::string::npos) {
        add_text(std::string_view(word).substr(i));
        break;
      }
      add_text(std::string_view(word).substr(i, open - i));
      std::string_view inside = std::string_view(word).substr(open + 1, close - open - 1);
      Piece piece;
      if (inside == "#") {
        piece.kind = Piece::Kind::seq;
      } else if (inside == "%") {
        piece.kind = Piece::Kind::slot;
      } else {
        std::size_t digits = 0;
        while (digits < inside.size() && std::isdigit(static_cast<unsigned char>(inside[digits])))
          ++digits;
        std::string_view modifier = inside.substr(digits);
        bool known = std::find(std::begin(kModifiers), std::end(kModifiers), modifier) !=
                     std::end(kModifiers);
        if (known && (digits == 0 || parse_digits(inside.substr(0, digits), piece.group))) {
          piece.kind = Piece::Kind::argument;
          piece.modifier = modifier;
          has_argument = true;
        }
      }
      if (piece.kind == Piece::Kind::text)
        add_text(std::string_view(word).substr(open, close - open + 1));
      else
        pieces.push_back(std::move(piece));
      i = close + 1;
    }
  }
  append_arguments_ = !has_argument;
}

std::string CommandTemplate::expand(const Word& word, const std::vector<std::string>& args,
                                    std::uint64_t seq, int slot) const {
  std::string out;
  auto quote = [&](const std::string& value) { return shell_ ? shell_quote(value) : value; };
  for (const Piece& piece : word) {
    switch (piece.kind) {
      case Piece::Kind::text:
        out += piece.text;
        break;
      case Piece::Kind::seq:
        out += std::to_string(seq);
        break;
      case Piece::Kind::slot:
        out += std::to_string(slot);
        break;
      case Piece::Kind::argument:
        if (piece.group > 0) {
          if (static_cast<std::size_t>(piece.group) > args.size())
            throw UsageError("{" + std::to_string(piece.group) + "} refers to input group " +
                             std::to_string(piece.group) + ", but there are only " +
                             std::to_string(args.size()));
          out += quote(apply(piece.modifier, args[static_cast<std::size_t>(piece.group) - 1]));
        } else {
          for (std::size_t i = 0; i < args.size(); ++i) {
            if (i) out += ' ';
            out += quote(apply(piece.modifier, args[i]));
          }
        }
        break;
    }
  }
  return out;
}

CommandTemplate::Rendered CommandTemplate::render(const std::vector<std::string>& args,
                                                  std::uint64_t seq, int slot) const {
  Rendered rendered;
  if (inputs_are_commands_) {
    std::string script;
    for (std::size_t i = 0; i < args.size(); ++i) script += (i ? " " : "") + args[i];
    rendered.display = script;
    rendered.argv = {"/bin/sh", "-c", std::move(script)};
    return rendered;
  }
  std::vector<std::string> words;
  for (const Word& word : words_) words.push_back(expand(word, args, seq, slot));
  if (append_arguments_)
    for (const std::string& arg : args) words.push_back(shell_ ? shell_quote(arg) : arg);

  if (shell_) {
    std::string script;
    for (std::size_t i = 0; i < words.size(); ++i) script += (i ? " " : "") + words[i];
    rendered.display = script;
    rendered.argv = {"/bin/sh", "-c", std::move(script)};
  } else {
    for (std::size_t i = 0; i < words.size(); ++i)
      rendered.display += (i ? " " : "") + shell_quote(words[i]);
    rendered.argv = std::move(words);
  }
  return rendered;
}

}  // namespace ferry::run
