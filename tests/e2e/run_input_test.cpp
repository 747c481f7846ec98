// `ferry run` reads its inputs as jobs need them: a job starts before the
// input ended, and memory does not grow with the input's length. "Started
// before the input ended" is shown by events, never by time: the producer
// waits (bounded) until a job left a file, and says whether it saw it.
#include <gtest/gtest.h>

#include <string>

#include "ferry_process.hpp"

namespace ferry::e2e {
namespace {

constexpr long kMaxRssKb = 40 * 1024;

exec::Result run_script(const std::string& script, const TempDir& dir) {
  exec::Command command = exec::shell_command(script);
  command.cwd = dir.path().string();
  command.env = {std::string("FERRY=") + FERRY_BINARY, "TMPDIR=" + dir.path().string()};
  command.timeout = std::chrono::seconds(300);
  return run_to_end(command);
}

// Shell: wait up to 30 s for file $1, then say whether it came.
const std::string kAwait =
    "await() { i=0; while [ ! -e \"$1\" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; "
    "[ -e \"$1\" ] && echo \"saw $1\" >> producer || echo \"gave up on $1\" >> producer; }; ";

TEST(FerryRunInput, AJobStartsBeforeStdinEnds) {
  TempDir dir;
  auto r = run_script(kAwait +
                          "{ echo a; await done.a; echo b; await done.b; } | "
                          "\"$FERRY\" run -k sh -c 'echo $0; touch done.$0'",
                      dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\n");
  EXPECT_EQ(read_file(dir / "producer"), "saw done.a\nsaw done.b\n");
}

// The queue pattern: `tail -f queue | ferry run`, the input never ends until
// the producer sees every job done.
TEST(FerryRunInput, QueueStyleInputThatStaysOpen) {
  TempDir dir;
  auto r = run_script(kAwait +
                          "{ echo 1; echo 2; await done.1; await done.2; echo 3; await done.3; } | "
                          "\"$FERRY\" run -j 4 --shell 'touch done.{}'",
                      dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir / "producer"), "saw done.1\nsaw done.2\nsaw done.3\n");
}

TEST(FerryRunInput, FourColonsFromAFifoAndCrossProductsStream) {
  TempDir dir;
  auto r = run_script(kAwait +
                          "mkfifo fifo; { echo a; await done.a.2; echo b; } > fifo & "
                          "\"$FERRY\" run -k --shell 'touch done.{1}.{2}; echo {1}{2}' "
                          ":::: fifo ::: 1 2; wait",
                      dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a1\na2\nb1\nb2\n");
  EXPECT_EQ(read_file(dir / "producer"), "saw done.a.2\n");
}

// Five million inputs, and the first job halts the run: ferry read only a
// little of them, and its memory shows it.
TEST(FerryRunInput, MemoryDoesNotGrowWithTheInput) {
  TempDir dir;
  for (std::string form : {"seq 5000000 | \"$FERRY\" run --halt now,fail=1 false",
                           "seq 5000000 > big; \"$FERRY\" run --halt now,fail=1 false :::: big",
                           "seq 5000000 > big; \"$FERRY\" run --halt now,fail=1 false :::: big "
                           "::: x y"}) {
    auto r = run_script(form, dir);
    EXPECT_EQ(r.exit_code, 1) << form << ": " << r.err;
    if (!under_address_sanitizer()) {
      EXPECT_LT(r.max_rss_kb, kMaxRssKb) << form;
    }
  }
}

TEST(FerryRunInput, ANulByteInAnInputIsRefusedWithAWarning) {
  TempDir dir;
  auto r = run_script("printf 'a\\0b\\nc\\n' | \"$FERRY\" run -k echo", dir);
  EXPECT_EQ(r.out, "c\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NUL"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ferry::e2e
