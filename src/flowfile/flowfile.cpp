#include "flowfile/flowfile.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>
#include <zip.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <memory>

#include "flowfile/reading.hpp"

namespace ferry::flowfile {
namespace reading {

// Where in the file an error is: "" for the top, `node "a:b"`, `flow "a"`.
// A refusal is one line: a control character it quotes (a newline in a
// node's name) is written as an escape.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (byte < 0x20 || byte == 0x7f)
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return out;
}

[[noreturn]] void fail(std::string_view source, std::string_view where, std::string_view what) {
  if (where.empty()) throw FlowError(one_line(fmt::format("{}: {}", source, what)));
  throw FlowError(one_line(fmt::format("{}: {}: {}", source, where, what)));
}

// Text is checked before any parser sees it: bounded, no NUL, valid UTF-8.
void check_text(std::string_view text, std::string_view source) {
  if (text.size() > kMaxFileBytes)
    fail(source, "", fmt::format("is larger than {} bytes", kMaxFileBytes));
  for (std::size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte == 0) fail(source, "", fmt::format("byte {}: a NUL byte is not text", i));
    std::size_t length = byte < 0x80           ? 1
                         : (byte >> 5) == 0x6  ? 2
                         : (byte >> 4) == 0xE  ? 3
                         : (byte >> 3) == 0x1E ? 4
                                               : 0;
    bool valid = length != 0 && i + length <= text.size();
    std::uint32_t code = length <= 1 ? byte : byte & (0x3F >> (length - 1));
    for (std::size_t k = 1; valid && k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    if (valid && length > 1)
      valid = code >= kLeast[length] && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF);
    if (!valid) fail(source, "", fmt::format("byte {}: not UTF-8 text", i));
    i += length;
  }
}

// ---- YAML to JSON values ---------------------------------------------------

// Converts a YAML tree to JSON values, counting every value it makes, so
// aliases that multiply ("billion laughs") or refer to themselves end in an
// error instead of a hang. With `typed`, plain scalars become numbers, true,
// false and null as YAML 1.2 reads them; otherwise every scalar stays text
// (Azkaban reads its values as text).
class YamlConverter {
 public:
  YamlConverter(std::string_view source, bool typed) : source_(source), typed_(typed) {}

  json::value convert(const YAML::Node& node, const std::string& path, int depth) {
    if (depth > kMaxDepth) {
      // The path of a value that deep is long: its start says where.
      std::string start = path.size() > 60 ? path.substr(0, 60) + "..." : path;
      fail(source_, start, fmt::format("nested deeper than {} levels", kMaxDepth));
    }
    if (++values_ > kMaxValues)
      fail(source_, "",
           fmt::format("holds more than {} values (an alias counts each time it is used)",
                       kMaxValues));
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar(node, path);
      case YAML::NodeType::Sequence: {
        json::array array;
        std::size_t index = 0;
        for (const YAML::Node& item : node)
          array.push_back(convert(item, fmt::format("{}[{}]", path, index++), depth + 1));
        return array;
      }
      case YAML::NodeType::Map: {
        json::object object;
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) fail(source_, path, "a key must be text");
          const std::string& key = entry.first.Scalar();
          std::string key_path = path.empty() ? key : path + "." + key;
          count_bytes(key.size());
          if (object.contains(key)) fail(source_, key_path, "the key appears twice");
          object[key] = convert(entry.second, key_path, depth + 1);
        }
        return object;
      }
    }
    return nullptr;
  }

 private:
  void count_bytes(std::size_t bytes) {
    bytes_ += bytes;
    if (bytes_ > kMaxTotalBytes)
      fail(source_, "",
           fmt::format("holds more than {} bytes of text (an alias counts each time it is used)",
                       kMaxTotalBytes));
  }

  json::value scalar(const YAML::Node& node, const std::string& path) {
    const std::string& text = node.Scalar();
    count_bytes(text.size());
    // YAML's "\0" escape makes one; the API refuses them in every string.
    if (text.find('\0') != std::string::npos) fail(source_, path, "a NUL character is not text");
    // "?" is the tag of a plain (unquoted) scalar; quoted ones are text.
    if (!typed_ || node.Tag() != "?") return json::string(text);
    if (text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    if (!text.empty() && text[0] == '+') ++first;
    std::int64_t whole = 0;
    auto [end, error] = std::from_chars(first, last, whole);
    if (end == last && error == std::errc{} && first != last) return whole;
    std::uint64_t large = 0;
    auto [large_end, large_error] = std::from_chars(first, last, large);
    if (large_end == last && large_error == std::errc{} && first != last) return large;
    bool digits = first != last && std::all_of(first, last, [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' ||
                           c == 'E' || c == '-' || c == '+';
                  });
    bool starts_like_number = first != last && (std::isdigit(static_cast<unsigned char>(*first)) ||
                                                *first == '-' || *first == '.');
    if (digits && starts_like_number) {
      double number = 0;
      auto [number_end, number_error] = std::from_chars(first, last, number);
      if (number_end == last && number_error == std::errc{} && std::isfinite(number)) return number;
      if (number_end == last)
        fail(source_, path, fmt::format("the number {} is out of range", text));
    }
    return json::string(text);
  }

  std::string_view source_;
  bool typed_;
  std::size_t values_ = 0;
  std::size_t bytes_ = 0;
};

json::value yaml_to_json(std::string_view text, std::string_view source, bool typed) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& error) {
    // yaml-cpp's parser bounds its own recursion; its message says "bad file".
    fail(source, fmt::format("line {}, column {}", error.mark.line + 1, error.mark.column + 1),
         "nested too deeply");
  } catch (const YAML::Exception& error) {
    fail(source, fmt::format("line {}, column {}", error.mark.line + 1, error.mark.column + 1),
         error.msg);
  }
  return YamlConverter(source, typed).convert(root, "", 0);
}

json::value parse_json(std::string_view text, std::string_view source) {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  std::error_code error;
  json::value value = json::parse(text, error, {}, options);
  if (error) fail(source, "", fmt::format("not valid JSON: {}", error.message()));
  return value;
}

std::string text_of(const json::value& value) {
  if (value.is_string()) return std::string(value.as_string());
  if (value.is_null()) return "";
  return json::serialize(value);
}

}  // namespace reading

using namespace reading;

namespace {

// ---- plain ferry flows ---------------------------------------------------------

// Replaces ${name} in every string value (not in keys) of a plain flow.
void substitute_all(json::value& value, const Scope& scope, const std::string& path,
                    std::string_view source) {
  if (value.is_string()) {
    try {
      value = json::string(scope.substitute(value.as_string()));
    } catch (const std::invalid_argument& error) {
      fail(source, path, error.what());
    }
    if (value.as_string().find('\0') != json::string::npos)
      fail(source, path, "a NUL character is not text");
  } else if (value.is_array()) {
    json::array& array = value.as_array();
    for (std::size_t i = 0; i < array.size(); ++i)
      substitute_all(array[i], scope, fmt::format("{}[{}]", path, i), source);
  } else if (value.is_object()) {
    for (auto& entry : value.as_object())
      substitute_all(entry.value(), scope,
                     path.empty() ? std::string(entry.key())
                                  : fmt::format("{}.{}", path, std::string(entry.key())),
                     source);
  }
}

FlowDocument plain_flow(json::value root, std::string_view name, std::string_view source,
                        const Params& overrides) {
  if (!root.is_object()) fail(source, "", "a flow file is a map with jobs (and flow, params)");
  json::object& top = root.as_object();
  for (const auto& entry : top)
    if (entry.key() != "jobs" && entry.key() != "flow" && entry.key() != "params")
      fail(source, entry.key(), "unknown key (a flow file holds jobs, flow and params)");
  Scope scope(nullptr, &overrides);
  if (const json::value* params = top.if_contains("params")) {
    if (!params->is_object() && !params->is_null()) fail(source, "params", "must be a map");
    if (params->is_object())
      for (const auto& entry : params->as_object()) {
        if (entry.value().is_object() || entry.value().is_array())
          fail(source, fmt::format("params.{}", std::string(entry.key())),
               "a parameter is a single value");
        scope.define(entry.key(), text_of(entry.value()));
      }
  }
  json::value* jobs = top.if_contains("jobs");
  if (!jobs || !jobs->is_array() || jobs->as_array().empty())
    fail(source, "jobs", "must be a list of at least one job");
  substitute_all(*jobs, scope, "jobs", source);
  json::object flow;
  if (json::value* given = top.if_contains("flow")) {
    if (!given->is_object()) fail(source, "flow", "must be a map (name, key)");
    substitute_all(*given, scope, "flow", source);
    flow = given->as_object();
  }
  if (!flow.contains("name")) flow["name"] = name;
  FlowDocument document;
  document.name =
      flow["name"].is_string() ? std::string(flow["name"].as_string()) : std::string(name);
  document.source = std::string(source);
  json::object batch;
  batch["flow"] = std::move(flow);
  batch["jobs"] = std::move(*jobs);
  document.batch_json = json::serialize(batch);
  return document;
}

// ---- files -----------------------------------------------------------------------

std::string read_file(const std::filesystem::path& path) {
  std::error_code error;
  auto size = std::filesystem::file_size(path, error);
  if (error) fail(path.string(), "", error.message());
  if (size > kMaxFileBytes)
    fail(path.string(), "", fmt::format("is larger than {} bytes", kMaxFileBytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "", "cannot be read");
  // Read at most one byte past the limit: the file may grow while read.
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) fail(path.string(), "", "cannot be read");
  return text;
}

// An Azkaban project's `.project` file says which flow format it holds.
void check_project_file(std::string_view text, std::string_view source) {
  check_text(text, source);
  json::value root = yaml_to_json(text, source, false);
  const json::value* version =
      root.is_object() ? root.as_object().if_contains("azkaban-flow-version") : nullptr;
  if (!version || text_of(*version) != "2.0")
    fail(source, "azkaban-flow-version", "must be 2.0 (ferry reads Flow 2.0 projects)");
}

// One flow file of a directory or zip: its path there, and its text.
struct Entry {
  std::string path;
  std::string text;
};

std::vector<FlowDocument> flows_of(std::vector<Entry> flows, const std::vector<Entry>& projects,
                                   std::string_view container, const Params& params) {
  for (const Entry& project : projects)
    check_project_file(project.text, fmt::format("{}:{}", container, project.path));
  if (flows.empty()) fail(container, "", "holds no .flow file");
  std::sort(flows.begin(), flows.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  std::vector<FlowDocument> documents;
  std::map<std::string, std::string> sources;  // flow name -> where
  for (const Entry& flow : flows) {
    std::string source = fmt::format("{}:{}", container, flow.path);
    std::string stem = std::filesystem::path(flow.path).stem().string();
    auto [place, fresh] = sources.emplace(stem, source);
    if (!fresh)
      fail(source, "", fmt::format("another flow is named \"{}\": {}", stem, place->second));
    documents.push_back(convert(flow.text, Format::azkaban, stem, source, params));
  }
  return documents;
}

std::vector<FlowDocument> load_directory(const std::filesystem::path& directory,
                                         const Params& params) {
  std::vector<Entry> flows, projects;
  std::error_code error;
  std::size_t seen = 0;
  // Symbolic links to directories are not followed, so a loop cannot be.
  for (std::filesystem::recursive_directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    if (++seen > kMaxFiles)
      fail(directory.string(), "", fmt::format("holds more than {} files", kMaxFiles));
    if (!it->is_regular_file()) continue;
    std::string extension = it->path().extension().string();
    if (extension != ".flow" && extension != ".project") continue;
    Entry entry{std::filesystem::relative(it->path(), directory).generic_string(),
                read_file(it->path())};
    (extension == ".flow" ? flows : projects).push_back(std::move(entry));
  }
  if (error) fail(directory.string(), "", error.message());
  return flows_of(std::move(flows), projects, directory.string(), params);
}

std::vector<FlowDocument> load_zip(const std::filesystem::path& path, const Params& params) {
  std::string container = path.string();
  int code = 0;
  std::unique_ptr<zip_t, int (*)(zip_t*)> archive(zip_open(container.c_str(), ZIP_RDONLY, &code),
                                                  zip_close);
  if (!archive) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail(container, "", fmt::format("not a readable zip: {}", message));
  }
  zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  if (count < 0 || static_cast<std::size_t>(count) > kMaxFiles)
    fail(container, "", fmt::format("holds more than {} entries", kMaxFiles));
  std::vector<Entry> flows, projects;
  for (zip_uint64_t index = 0; index < static_cast<zip_uint64_t>(count); ++index) {
    const char* raw_name = zip_get_name(archive.get(), index, ZIP_FL_ENC_GUESS);
    if (!raw_name) fail(container, "", fmt::format("entry {} has no name", index));
    std::string name = raw_name;
    // A project is unpacked by some tools: an entry must stay inside it.
    std::filesystem::path entry_path(name);
    bool escapes = name.empty() || name[0] == '/' || name.find('\\') != std::string::npos ||
                   std::any_of(entry_path.begin(), entry_path.end(),
                               [](const std::filesystem::path& part) { return part == ".."; });
    if (escapes)
      fail(container, "", fmt::format("entry \"{}\": an absolute path or '..' is refused", name));
    std::string extension = entry_path.extension().string();
    if (name.back() == '/' || (extension != ".flow" && extension != ".project")) continue;
    zip_stat_t stat;
    if (zip_stat_index(archive.get(), index, 0, &stat) != 0 || !(stat.valid & ZIP_STAT_SIZE))
      fail(container, name, "cannot be read");
    if (stat.size > kMaxFileBytes)
      fail(container, name, fmt::format("is larger than {} bytes", kMaxFileBytes));
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> file(zip_fopen_index(archive.get(), index, 0),
                                                           zip_fclose);
    if (!file)
      fail(container, name, fmt::format("cannot be read: {}", zip_strerror(archive.get())));
    // The stated size is not trusted: read at most one byte past the limit.
    std::string text(kMaxFileBytes + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
      zip_int64_t read = zip_fread(file.get(), text.data() + got, text.size() - got);
      if (read < 0)
        fail(container, name, fmt::format("cannot be read: {}", zip_file_strerror(file.get())));
      if (read == 0) break;
      got += static_cast<std::size_t>(read);
    }
    if (got > kMaxFileBytes)
      fail(container, name, fmt::format("is larger than {} bytes", kMaxFileBytes));
    text.resize(got);
    (extension == ".flow" ? flows : projects).push_back(Entry{name, std::move(text)});
  }
  return flows_of(std::move(flows), projects, container, params);
}

}  // namespace

Format format_of(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  if (extension == ".flow") return Format::azkaban;
  if (extension == ".yaml" || extension == ".yml") return Format::plain_yaml;
  if (extension == ".json") return Format::plain_json;
  throw FlowError(fmt::format(
      "{}: not a flow file (.flow for Azkaban Flow 2.0; .yaml, .yml or .json for a ferry flow)",
      path.string()));
}

FlowDocument convert(std::string_view text, Format format, std::string_view name,
                     std::string_view source, const Params& params) {
  check_text(text, source);
  if (format == Format::azkaban) {
    json::value root = yaml_to_json(text, source, false);
    json::array jobs = azkaban_jobs(root, source, params);
    json::object batch;
    batch["flow"] = json::object{{"name", name}};
    batch["jobs"] = std::move(jobs);
    return FlowDocument{std::string(name), std::string(source), json::serialize(batch)};
  }
  json::value root =
      format == Format::plain_json ? parse_json(text, source) : yaml_to_json(text, source, true);
  return plain_flow(std::move(root), name, source, params);
}

std::vector<FlowDocument> load_flows(const std::filesystem::path& path, const Params& params) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return load_directory(path, params);
  if (!std::filesystem::exists(path, error)) fail(path.string(), "", "no such file or directory");
  if (path.extension() == ".zip") return load_zip(path, params);
  Format format = format_of(path);
  return {convert(read_file(path), format, path.stem().string(), path.string(), params)};
}

}  // namespace ferry::flowfile
