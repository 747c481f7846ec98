// Flow files (flowfile/flowfile.hpp): Azkaban Flow 2.0 and plain ferry
// flows, as hostile text.
//
// The input's first byte picks the format ('a' Azkaban, 'y' plain YAML, 'j'
// plain JSON; any other: by its value); the rest is the file.
//
// - Conversion throws nothing but FlowError, whose message is one line
//   naming the file;
// - a document converted is JSON; one converted from Azkaban's format, whose
//   jobs the converter writes, is a batch the API accepts as it is (a plain
//   flow is the API's document, passed on for the API to check).
#include "flowfile/flowfile.hpp"
#include "fuzz_checks.hpp"
#include "server/job_spec.hpp"

using namespace ferry::flowfile;
using ferry::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr Format kFormats[] = {Format::azkaban, Format::plain_yaml, Format::plain_json};
  char pick = static_cast<char>(data[0]);
  Format format = pick == 'a'   ? Format::azkaban
                  : pick == 'y' ? Format::plain_yaml
                  : pick == 'j' ? Format::plain_json
                                : kFormats[data[0] % 3];
  std::string_view text = ferry::fuzz::text_of(data + 1, size - 1);
  FlowDocument document;
  try {
    document = convert(text, format, "fuzz", "fuzz.flow", {{"given", "by --param"}});
  } catch (const FlowError& refusal) {
    std::string_view message = refusal.what();
    require(message.starts_with("fuzz.flow"), "a refusal names the file", message);
    require(message.find('\n') == std::string_view::npos, "a refusal is one line", message);
    return 0;
  }
  ferry::fuzz::reparsed(document.batch_json, "a flow converts to JSON");
  if (format != Format::azkaban) return 0;
  try {
    ferry::server::parse_job_batch(document.batch_json);
  } catch (const ferry::server::SpecError& refusal) {
    ferry::fuzz::broken("the API accepts a flow converted",
                        std::string(refusal.what()) + "\n" + document.batch_json);
  }
  return 0;
}
