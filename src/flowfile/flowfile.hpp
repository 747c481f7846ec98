// Flow files — a flow written down, turned into the document a client
// submits to the API (POST /v1/jobs: {"flow": {...}, "jobs": [...]}).
//
// Two formats are read (docs/flows.md is their contract):
//  - Azkaban's Flow 2.0 (`.flow`, YAML): `nodes` of type command, noop or
//    flow (embedded), `dependsOn`, `condition` macros, `config.command`,
//    `command.N`, `retries`, `retry.backoff`, and `${name}` parameters.
//  - A plain ferry flow (`.yaml`, `.yml`, `.json`): the API's own batch
//    document, with `${name}` parameters from a top-level `params` map.
//
// Conversion is all or nothing: anything not understood (an unknown key, a
// job type ferry does not run, a cycle, an unknown parameter) is a FlowError
// whose message is one line naming the file, the node and the key
// (`nightly.flow: node "build": config.foo: unknown key`), and no document
// is produced. Input is bounded (size, nesting, node count, expanded
// length), so hostile text is refused rather than exhausting the stack or
// memory.
#pragma once

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::flowfile {

struct FlowError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parameter overrides (`--param k=v`): they win over every value a file sets.
using Params = std::map<std::string, std::string>;

struct FlowDocument {
  std::string name;        // the flow's name: the file's stem unless the file says
  std::string source;      // where it came from, as errors name it ("p.zip:a/b.flow")
  std::string batch_json;  // the submit batch, compact JSON
};

enum class Format {
  azkaban,     // Flow 2.0 YAML
  plain_yaml,  // the API's batch document, in YAML
  plain_json,  // the API's batch document, in JSON
};

// The format a file name implies: .flow, .yaml/.yml, .json; throws FlowError
// for any other.
Format format_of(const std::filesystem::path& path);

// Converts one flow's text. `name` is the flow's name (a file's stem);
// `source` names the text in error messages.
FlowDocument convert(std::string_view text, Format format, std::string_view name,
                     std::string_view source, const Params& params = {});

// Reads a flow file (by its extension), every `.flow` under a directory, or
// every `.flow` in an Azkaban project zip, in the order of their paths. A
// `.project` file, when present, must say `azkaban-flow-version: 2.0`. The
// first error stops it: then nothing is returned.
std::vector<FlowDocument> load_flows(const std::filesystem::path& path, const Params& params = {});

}  // namespace ferry::flowfile
