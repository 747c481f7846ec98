// ResultFiles — where `--results DIR` and `--files` keep a job's output
// instead of printing it, laid out as GNU parallel lays it out:
//
//   --results DIR   DIR/1/<first input>/2/<second input>/{stdout,stderr,seq}
//                   ("/" in an input is written "\_", "\" as "\\"; seq holds
//                   the job number, without a newline)
//   --files         stdout in DIR/parXXXXXX.par (DIR: --tmpdir), whose name
//                   is what the job prints; stderr is printed as usual
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exec/process_set.hpp"

namespace ferry::run {

class ResultFiles {
 public:
  // Throw std::runtime_error when a file cannot be created.
  static std::unique_ptr<ResultFiles> for_results(const std::string& directory,
                                                  const std::vector<std::string>& args,
                                                  std::uint64_t seq);
  static std::unique_ptr<ResultFiles> for_files(const std::string& directory);
  ~ResultFiles();
  ResultFiles(const ResultFiles&) = delete;
  ResultFiles& operator=(const ResultFiles&) = delete;

  // Whether output of `stream` goes to a file (else it is printed).
  bool keeps(exec::Stream stream) const { return (stream == exec::Stream::out ? out_ : err_) >= 0; }
  void write(exec::Stream stream, std::string_view data) const;
  // --files: the name to print.
  const std::string& name() const { return name_; }

 private:
  ResultFiles() = default;
  int out_ = -1;
  int err_ = -1;
  std::string name_;
};

// An input as a directory name under --results.
std::string results_component(const std::string& value);

}  // namespace ferry::run
