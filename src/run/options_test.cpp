#include "run/options.hpp"

#include <gtest/gtest.h>

namespace ferry::run {
namespace {

using Strings = std::vector<std::string>;

RunOptions parse(Strings words) { return parse_run_options(words, 4); }

TEST(RunOptions, ParallelsSpellings) {
  auto o = parse({"-j2", "-kq", "--timeout=1.5", "--retries", "3", "echo", "{}", ":::", "a"});
  EXPECT_EQ(o.jobs, 2);
  EXPECT_TRUE(o.keep_order);
  EXPECT_EQ(o.timeout.count(), 1500);
  EXPECT_EQ(o.attempts, 3);
  EXPECT_EQ(o.command_line.command, (Strings{"echo", "{}"}));
  EXPECT_EQ(parse({"-P", "+1", "true"}).jobs, 5);
  EXPECT_EQ(parse({"-j", "1", "-j", "50%", "true"}).jobs, 2);  // the last one counts
  EXPECT_TRUE(parse({"--dryrun", "true"}).dry_run);
  EXPECT_EQ(parse({"--", "-weird", ":::", "a"}).command_line.command, (Strings{"-weird"}));
  EXPECT_EQ(parse({"--resume-failed", "x"}).resume, Resume::failed);
}

TEST(RunOptions, ArgFilesComeBeforeTheGroupsAndLinkPairsThem) {
  auto o = parse({"-a", "f1", "--link", "echo", ":::", "x", "y"});
  ASSERT_EQ(o.command_line.sources.size(), 2u);
  EXPECT_EQ(o.command_line.sources[0].path, "f1");
  EXPECT_TRUE(o.command_line.sources[1].linked);
  EXPECT_EQ(parse({"-0", "x"}).input.delimiter, '\0');
  EXPECT_EQ(parse({"-d", "\\t", "x"}).input.delimiter, '\t');
}

TEST(RunOptions, MistakesAreOneLine) {
  for (Strings bad : std::vector<Strings>{{"--timeout", "-5%"},
                                          {"--timeout", "-1"},
                                          {"--retries", "-1"},
                                          {"--retries", "1e999"},
                                          {"-j"},
                                          {"-j", "lots"},
                                          {"--bogus"},
                                          {"-S", "host"},
                                          {"-k=1"},
                                          {"--keep-order=yes"},
                                          {"-q", "--shell", "x"},
                                          {"-d", "ab", "x"}}) {
    try {
      parse(bad);
      ADD_FAILURE() << bad[0] << " was accepted";
    } catch (const UsageError& error) {
      std::string message = error.what();
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      EXPECT_LT(message.size(), 150u) << message;
    }
  }
}

TEST(Halt, ParallelsForms) {
  EXPECT_EQ(parse_halt("never").when, HaltPolicy::When::never);
  EXPECT_EQ(parse_halt("0").when, HaltPolicy::When::never);
  auto one = parse_halt("1");
  EXPECT_EQ(one.when, HaltPolicy::When::soon);
  EXPECT_EQ(one.count, 1);
  EXPECT_EQ(parse_halt("2").when, HaltPolicy::When::now);
  EXPECT_EQ(parse_halt("-2").on, HaltPolicy::On::success);
  EXPECT_EQ(parse_halt("-1").when, HaltPolicy::When::soon);
  auto percent = parse_halt("20%");
  EXPECT_EQ(percent.on, HaltPolicy::On::fail);
  EXPECT_TRUE(percent.percent);
  EXPECT_EQ(percent.count, 20);
  auto success = parse_halt("soon,success=3");
  EXPECT_EQ(success.on, HaltPolicy::On::success);
  EXPECT_EQ(success.count, 3);
  auto done = parse_halt("now,done=10%");
  EXPECT_EQ(done.on, HaltPolicy::On::done);
  EXPECT_TRUE(done.percent);
  EXPECT_THROW(parse_halt("now,fail=0"), UsageError);
  EXPECT_THROW(parse_halt("later,fail=1"), UsageError);
  EXPECT_THROW(parse_halt("now,fail=101%"), UsageError);
}

TEST(Jobs, Forms) {
  EXPECT_EQ(parse_jobs("8", 2), 8);
  EXPECT_EQ(parse_jobs("150%", 2), 3);
  EXPECT_EQ(parse_jobs("-1", 2), 1);
  EXPECT_EQ(parse_jobs("0", 2), 0);
  EXPECT_THROW(parse_jobs("x", 2), UsageError);
}

// A percent of many cores overflowed an int (9999999% of 1024 cores gave
// 16500644; UBSan stops fuzz/run_options_fuzzer on it). Like any other
// form, it gives at most 9999999, the most -j can say plainly.
TEST(Jobs, ManyCoresCapped) {
  EXPECT_EQ(parse_jobs("150%", 1024), 1536);
  EXPECT_EQ(parse_jobs("9999999%", 1024), 9'999'999);
  EXPECT_EQ(parse_jobs("+9999999", 1024), 9'999'999);
  EXPECT_EQ(parse_jobs("-9999999", 1024), 1);
}

}  // namespace
}  // namespace ferry::run
