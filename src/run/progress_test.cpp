#include "run/progress.hpp"

#include <gtest/gtest.h>

namespace ferry::run {
namespace {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(7.4), "0:07");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-5), "0:00");
}

TEST(Progress, EtaFromTheRateSoFar) {
  Progress p{.total = 100, .succeeded = 20, .failed = 5, .running = 4, .elapsed = 10};
  EXPECT_DOUBLE_EQ(eta_seconds(p), 30.0);  // 25 done in 10 s, 75 left
  p.succeeded = p.failed = 0;
  EXPECT_LT(eta_seconds(p), 0);
}

TEST(Progress, RendersABarThatFitsTheWidth) {
  Progress p{.total = 200, .succeeded = 90, .failed = 10, .running = 8, .elapsed = 20};
  std::string line = render_progress(p, 80);
  EXPECT_EQ(line.size(), 80u);
  EXPECT_EQ(line.rfind(" 50% [", 0), 0u) << line;
  EXPECT_NE(line.find("] 100/200 failed 10 running 8 5.0/s ETA 0:20"), std::string::npos) << line;
  EXPECT_NE(line.find("=>"), std::string::npos);
}

TEST(Progress, NarrowTerminalGetsNumbersOnly) {
  Progress p{.total = 10, .succeeded = 10, .failed = 0, .running = 0, .elapsed = 1};
  std::string line = render_progress(p, 30);
  EXPECT_LE(line.size(), 30u);
  EXPECT_EQ(line.rfind("100% 10/10", 0), 0u) << line;
  EXPECT_EQ(render_progress(p, 0), "");
}

}  // namespace
}  // namespace ferry::run

namespace ferry::run {
namespace {

TEST(Progress, AnUnfinishedInputHasNoEta) {
  Progress p{.total = 50, .total_known = false, .succeeded = 10, .running = 2, .elapsed = 5};
  EXPECT_LT(eta_seconds(p), 0);
  EXPECT_NE(render_progress(p, 100).find(" 10/50+ "), std::string::npos) << render_progress(p, 100);
}

}  // namespace
}  // namespace ferry::run
