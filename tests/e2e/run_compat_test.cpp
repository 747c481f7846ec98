// `ferry run` against GNU parallel: every invocation of
// tests/e2e/parallel_compat.tsv (written as in parallel's documentation),
// run through sh with parallel() defined as `ferry run`, must print the
// recorded stdout and exit with the recorded status. Rows of kind "same"
// recorded what GNU parallel itself printed; the others say why ferry
// differs. GNU parallel is not needed to run this.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "ferry_process.hpp"

namespace ferry::e2e {
namespace {

struct Case {
  std::string kind, command, out, why;
  int exit_code = 0;
};

std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    char next = text[++i];
    out += next == 'n' ? '\n' : next == 't' ? '\t' : next;
  }
  return out;
}

std::vector<Case> read_table() {
  std::vector<Case> cases;
  std::ifstream file(FERRY_COMPAT_TABLE);
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      fields.push_back(line.substr(start, tab - start));
    fields.push_back(line.substr(start));
    if (fields.size() != 5) {
      ADD_FAILURE() << "malformed row: " << line;
      continue;
    }
    cases.push_back({fields[0], fields[1], unescape(fields[2]), fields[4], std::stoi(fields[3])});
  }
  return cases;
}

// The files the invocations read, and small programs that behave the same
// whether a shell or ferry starts them.
constexpr const char* kSetup =
    R"(printf '#!/bin/sh\necho $1; exit $1\n' > ex; printf '#!/bin/sh\nsleep $1; echo $1\n' > slp; )"
    R"(printf '#!/bin/sh\necho try >> tries; [ $(wc -l < tries) -ge $1 ]\n' > flaky; )"
    R"(chmod +x ex slp flaky; printf 'a b\nc d\n' > spaced; printf 'h\nv1\nv2\n' > named; )"
    R"(printf 'a\nb\nc\n' > abc; printf '1\n2\n3\n' > num3; printf 'x\0y z\0w\0' > nul3; )"
    R"(printf 'p,q,r' > comma; printf 'p\tq' > tabbed; printf 'a\tb\nc\td\n' > tsv; )"
    R"(printf 'h1,h2\nv1,v2\nw1,w2\n' > csv; parallel() { "$FERRY" run "$@"; }; )";

TEST(FerryRunCompat, ParallelsDocumentedInvocations) {
  std::vector<Case> cases = read_table();
  ASSERT_GE(cases.size(), 100u);
  int same = 0;
  for (const Case& one : cases) {
    TempDir dir;
    exec::Command command = exec::shell_command(std::string(kSetup) + one.command);
    command.cwd = dir.path().string();
    command.env = {std::string("FERRY=") + FERRY_BINARY, "TMPDIR=" + dir.path().string()};
    command.timeout = std::chrono::seconds(60);
    auto r = run_to_end(command);
    EXPECT_EQ(r.out, one.out) << one.command << "\n" << r.err;
    EXPECT_EQ(r.exit_code, one.exit_code) << one.command << "\n" << r.err;
    if (one.kind == "refused") {
      EXPECT_EQ(lines_of(r.err).size(), 1u) << one.command << "\n" << r.err;
    }
    same += one.kind == "same";
  }
  EXPECT_GE(same, 100);
}

}  // namespace
}  // namespace ferry::e2e
