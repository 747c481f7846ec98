// The job spec and its canonical form (job_spec.hpp): whatever
// parse_job_spec accepts, to_json renders as UTF-8 JSON that every reader
// of the API reads, parse_job_spec reads it back as the same spec, and
// rendering that again gives the same text.
#include "fuzz_checks.hpp"
#include "server/job_spec.hpp"

using namespace ferry::server;
using ferry::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  JobSpec spec;
  try {
    spec = parse_job_spec(ferry::fuzz::text_of(data, size));
  } catch (const SpecError& refusal) {
    ferry::fuzz::check_refusal(refusal);
    return 0;
  }
  std::string canonical = to_json(spec);
  ferry::fuzz::reparsed(canonical, "to_json gives JSON");
  JobSpec again;
  try {
    again = parse_job_spec(canonical);
  } catch (const SpecError& refusal) {
    ferry::fuzz::broken("parse_job_spec reads what to_json wrote",
                        std::string(refusal.what()) + "\n" + canonical);
  }
  require(again == spec, "to_json then parse_job_spec gives the same spec", canonical);
  require(to_json(again) == canonical, "to_json is canonical", canonical + "\n" + to_json(again));
  return 0;
}
