#include "run/command_template.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

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

// The last path component's extension starts at its last dot, unless that
// dot begins the name (.bashrc has none).
std::string strip_extension(std::string path) {
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  std::size_t name_start = slash == std::string::npos ? 0 : slash + 1;
  if (dot != std::string::npos && dot > name_start) path.erase(dot);
  return path;
}

// basename(1): trailing slashes do not count; "/" stays "/".
std::string base_name(const std::string& value) {
  auto end = value.find_last_not_of('/');
  if (end == std::string::npos) return value.empty() ? value : "/";
  auto slash = value.rfind('/', end);
  return value.substr(slash == std::string::npos ? 0 : slash + 1,
                      end - (slash == std::string::npos ? 0 : slash + 1) + 1);
}

// dirname(1): "dir/" -> ".", "a/b" -> "a", "/x" -> "/", "x" -> ".".
std::string dir_name(const std::string& value) {
  auto end = value.find_last_not_of('/');
  if (end == std::string::npos) return value.empty() ? "." : "/";
  auto slash = value.rfind('/', end);
  if (slash == std::string::npos) return ".";
  auto last = value.find_last_not_of('/', slash);
  return last == std::string::npos ? "/" : value.substr(0, last + 1);
}

std::string apply_modifier(std::string_view modifier, const std::string& value) {
  if (modifier.empty()) return value;
  if (modifier == ".") return strip_extension(value);
  if (modifier == "/") return base_name(value);
  if (modifier == "/.") return strip_extension(base_name(value));
  return dir_name(value);  // "//"
}

bool has_control_character(const std::string& value) {
  return std::any_of(value.begin(), value.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

// A printf format that prints `value` and then a dot (command substitution
// would drop trailing newlines; the dot keeps them, and is removed after).
std::string printf_format(const std::string& value) {
  std::string format;
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\\')
      format += "\\\\";
    else if (c == '%')
      format += "%%";
    else if (c == '\'')
      format += "'\\''";
    else if (byte < 0x20 || byte == 0x7f)
      format += fmt::format("\\{:03o}", byte);
    else
      format += c;
  }
  return "'" + format + ".'";
}

// `ferry_N=$(printf '...'); ferry_N=${ferry_N%.}; ` for each word that needs it.
std::string assign_with_printf(const std::string& name, const std::string& value) {
  return fmt::format("{0}=$(printf {1}); {0}=${{{0}%.}}; ", name, printf_format(value));
}

bool is_shell_syntax(char c) {
  return std::string_view(" \t\n;&|<>()$`\"'*?[]").find(c) != std::string_view::npos;
}

}  // namespace

std::string command_line_for_sh(const std::vector<std::string>& argv) {
  std::string assignments, words;
  int variables = 0;
  for (const std::string& word : argv) {
    if (!words.empty()) words += ' ';
    if (!has_control_character(word)) {
      words += shell_quote(word);
      continue;
    }
    std::string name = "ferry_" + std::to_string(++variables);
    assignments += assign_with_printf(name, word);
    words += "\"$" + name + "\"";
  }
  return assignments + words;
}

std::string script_line_for_sh(const std::string& script) {
  if (!has_control_character(script)) return script;
  return assign_with_printf("ferry_script", script) + "eval \"$ferry_script\"";
}

std::optional<std::string> shell_hint(const std::vector<std::string>& words) {
  if (words.size() != 1) return std::nullopt;
  const std::string& word = words[0];
  if (std::none_of(word.begin(), word.end(), is_shell_syntax)) return std::nullopt;
  if (word.find('/') != std::string::npos) {
    if (::access(word.c_str(), X_OK) == 0) return std::nullopt;
  } else if (const char* path = std::getenv("PATH")) {
    std::string_view dirs = path;
    while (!dirs.empty()) {
      auto colon = dirs.find(':');
      std::string dir(dirs.substr(0, colon));
      if (::access(((dir.empty() ? "." : dir) + "/" + word).c_str(), X_OK) == 0)
        return std::nullopt;
      dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    }
  }
  return "'" + word +
         "' is one word, taken as the name of a program, and no such program exists; "
         "to run it as a shell command, add --shell";
}

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

CommandTemplate::CommandTemplate(const std::vector<std::string>& words, bool shell,
                                 const TemplateOptions& options)
    : shell_(shell),
      context_replace_(options.context_replace),
      missing_is_empty_(options.missing_is_empty) {
  if (words.empty()) {
    inputs_are_commands_ = true;
    return;
  }
  bool has_replacement = false;
  for (const std::string& word : words) {
    Word& pieces = words_.emplace_back();
    auto add_text = [&](std::string_view text) {
      if (pieces.empty() || pieces.back().kind != Piece::Kind::text) pieces.emplace_back();
      pieces.back().text += text;
    };
    std::size_t i = 0;
    while (i < word.size()) {
      std::size_t open = word.find('{', i);
      // -I STR: STR is {}, wherever it appears (and {} is then plain text).
      std::size_t custom =
          options.replace.empty() ? std::string::npos : word.find(options.replace, i);
      if (custom != std::string::npos && (open == std::string::npos || custom <= open)) {
        add_text(std::string_view(word).substr(i, custom - i));
        Piece all;
        all.kind = Piece::Kind::argument;
        pieces.push_back(all);
        has_replacement = true;
        i = custom + options.replace.size();
        continue;
      }
      std::size_t close = open == std::string::npos ? open : word.find('}', open);
      if (close == std::string::npos) {
        add_text(std::string_view(word).substr(i));
        break;
      }
      add_text(std::string_view(word).substr(i, open - i));
      std::string_view inside = std::string_view(word).substr(open + 1, close - open - 1);
      if (inside.size() >= 2 && inside.front() == '=' &&
          word.find("=}", open + 2) != std::string::npos)
        throw UsageError(
            "{=...=} is a Perl expression in GNU parallel; ferry runs no Perl: use --shell and "
            "the shell's own forms, like ${x%.*}");
      Piece piece;
      auto named = std::find(options.column_names.begin(), options.column_names.end(), inside);
      if (inside == "#") {
        piece.kind = Piece::Kind::seq;
      } else if (inside == "%") {
        piece.kind = Piece::Kind::slot;
      } else if (!inside.empty() && named != options.column_names.end()) {
        piece.kind = Piece::Kind::argument;  // --header: {name} is that column
        piece.group = static_cast<int>(named - options.column_names.begin()) + 1;
      } else if (!(inside.empty() && !options.replace.empty())) {
        bool from_end = !inside.empty() && inside[0] == '-';
        std::string_view rest = inside.substr(from_end ? 1 : 0);
        std::size_t digits = 0;
        while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits])))
          ++digits;
        std::string_view modifier = rest.substr(digits);
        bool known = std::find(std::begin(kModifiers), std::end(kModifiers), modifier) !=
                     std::end(kModifiers);
        if (known &&
            (digits == 0 ? !from_end : parse_digits(rest.substr(0, digits), piece.group))) {
          piece.kind = Piece::Kind::argument;
          piece.modifier = modifier;
          if (from_end) piece.group = -piece.group;
        }
      }
      if (piece.kind != Piece::Kind::text) has_replacement = true;
      if (piece.kind == Piece::Kind::text)
        add_text(std::string_view(word).substr(open, close - open + 1));
      else
        pieces.push_back(std::move(piece));
      i = close + 1;
    }
  }
  append_arguments_ = !has_replacement && options.append_inputs;
}

// A word becomes one or more words: {} with several values splits the word
// the way a shell splits `pre-{}-post` with {} = `a b` (pre-a, b-post), or
// with -X repeats the whole word for each value (pre-a-post, pre-b-post).
void CommandTemplate::expand(const Word& word, const std::vector<std::string>& args,
                             std::uint64_t seq, int slot, std::vector<std::string>& out) const {
  auto quote = [&](const std::string& value) { return shell_ ? shell_quote(value) : value; };
  auto render = [&](const std::vector<std::string>* only) {
    std::vector<std::string> words(1);
    for (const Piece& piece : word) {
      switch (piece.kind) {
        case Piece::Kind::text:
          words.back() += piece.text;
          break;
        case Piece::Kind::seq:
          words.back() += std::to_string(seq);
          break;
        case Piece::Kind::slot:
          words.back() += std::to_string(slot);
          break;
        case Piece::Kind::argument:
          if (piece.group != 0) {
            auto count = static_cast<int>(args.size());
            int index = piece.group > 0 ? piece.group - 1 : count + piece.group;
            if ((index < 0 || index >= count) && missing_is_empty_) break;
            if (index < 0 || index >= count)
              throw UsageError("{" + std::to_string(piece.group) + "} refers to input " +
                               std::to_string(piece.group) + ", but there are only " +
                               std::to_string(args.size()));
            words.back() +=
                quote(apply_modifier(piece.modifier, args[static_cast<std::size_t>(index)]));
          } else {
            const std::vector<std::string>& values = only ? *only : args;
            for (std::size_t i = 0; i < values.size(); ++i) {
              std::string value = quote(apply_modifier(piece.modifier, values[i]));
              if (i == 0)
                words.back() += value;
              else if (shell_)
                words.back() += " " + value;  // the shell splits it
              else
                words.push_back(std::move(value));
            }
          }
          break;
      }
    }
    return words;
  };
  bool has_all = std::any_of(word.begin(), word.end(), [](const Piece& piece) {
    return piece.kind == Piece::Kind::argument && piece.group == 0;
  });
  if (context_replace_ && has_all && args.size() > 1) {
    std::string joined;
    for (const std::string& value : args) {
      std::vector<std::string> one{value};
      for (std::string& rendered : render(&one)) {
        if (shell_) {
          joined += (joined.empty() ? "" : " ") + rendered;
        } else {
          out.push_back(std::move(rendered));
        }
      }
    }
    if (shell_) out.push_back(std::move(joined));
    return;
  }
  for (std::string& rendered : render(nullptr)) out.push_back(std::move(rendered));
}

CommandTemplate::Rendered CommandTemplate::render(const std::vector<std::string>& args,
                                                  std::uint64_t seq, int slot) const {
  Rendered rendered;
  if (inputs_are_commands_) {
    std::string script;
    for (std::size_t i = 0; i < args.size(); ++i) script += (i ? " " : "") + args[i];
    rendered.display = script_line_for_sh(script);
    rendered.argv = {"/bin/sh", "-c", std::move(script)};
    return rendered;
  }
  std::vector<std::string> words;
  for (const Word& word : words_) expand(word, args, seq, slot, words);
  if (append_arguments_)
    for (const std::string& arg : args) words.push_back(shell_ ? shell_quote(arg) : arg);

  if (shell_) {
    std::string script;
    for (std::size_t i = 0; i < words.size(); ++i) script += (i ? " " : "") + words[i];
    rendered.display = script_line_for_sh(script);
    rendered.argv = {"/bin/sh", "-c", std::move(script)};
  } else {
    rendered.display = command_line_for_sh(words);
    rendered.argv = std::move(words);
  }
  return rendered;
}

}  // namespace ferry::run
