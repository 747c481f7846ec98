#include "run/output_order.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ferry::run {
namespace {

using exec::Stream;

// Streams into two files the test reads back.
class OutputOrderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-order-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    out_ = ::open((dir_ / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    err_ = ::open((dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    budget_.directory = dir_.string();
    streams_ = std::make_unique<OutputStreams>(out_, err_);
  }
  void TearDown() override {
    ::close(out_);
    ::close(err_);
    std::filesystem::remove_all(dir_);
  }
  std::string read(const char* name) {
    std::ifstream in(dir_ / name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::filesystem::path dir_;
  int out_ = -1, err_ = -1;
  SpoolBudget budget_;
  std::unique_ptr<OutputStreams> streams_;
};

TEST_F(OutputOrderTest, GroupedPrintsAJobWholeWhenItEnds) {
  OutputOrder order(OutputOrder::Mode::group, false, *streams_, budget_);
  order.started(1, true);
  order.started(2, true);
  order.output(1, Stream::out, "a1 ");
  order.output(2, Stream::out, "b1 ");
  order.output(1, Stream::err, "a-err ");
  order.output(1, Stream::out, "a2 ");
  EXPECT_EQ(read("out"), "");
  order.ended(2, true, "");
  order.ended(1, true, "note\n");
  EXPECT_EQ(read("out"), "b1 a1 a2 ");
  EXPECT_EQ(read("err"), "a-err note\n");
}

TEST_F(OutputOrderTest, AnAttemptThatIsRetriedPrintsNothing) {
  OutputOrder order(OutputOrder::Mode::group, false, *streams_, budget_);
  order.started(1, false);
  order.output(1, Stream::out, "first try ");
  order.ended(1, false, "");
  order.started(1, true);
  order.output(1, Stream::out, "last try");
  order.ended(1, true, "");
  EXPECT_EQ(read("out"), "last try");
}

TEST_F(OutputOrderTest, KeepOrderStreamsTheHeadAndHoldsTheRest) {
  OutputOrder order(OutputOrder::Mode::group, true, *streams_, budget_);
  order.started(1, true);
  order.started(2, true);
  order.started(3, true);
  order.output(2, Stream::out, "two ");
  order.output(1, Stream::out, "one ");
  EXPECT_EQ(read("out"), "one ");  // the head writes as it goes
  order.ended(2, true, "");
  order.skipped(4);
  EXPECT_EQ(read("out"), "one ");
  order.ended(1, true, "");
  EXPECT_EQ(read("out"), "one two ");
  EXPECT_EQ(order.next_to_print(), 3u);
  order.output(3, Stream::out, "three ");  // now the head: straight out
  EXPECT_EQ(read("out"), "one two three ");
  order.ended(3, true, "");
  EXPECT_EQ(order.next_to_print(), 5u);
}

TEST_F(OutputOrderTest, LineModeWritesWholeLinesOnly) {
  OutputOrder order(OutputOrder::Mode::line, false, *streams_, budget_);
  order.started(1, true);
  order.started(2, true);
  order.output(1, Stream::out, "a-line\na-par");
  order.output(2, Stream::out, "b-line\n");
  EXPECT_EQ(read("out"), "a-line\nb-line\n");
  order.output(1, Stream::out, "tial\n");
  EXPECT_EQ(read("out"), "a-line\nb-line\na-partial\n");
  order.output(2, Stream::out, "no newline");
  order.ended(2, true, "");
  EXPECT_EQ(read("out"), "a-line\nb-line\na-partial\nno newline");
}

}  // namespace
}  // namespace ferry::run

namespace ferry::run {
namespace {

TEST_F(OutputOrderTest, TagsStartEveryLine) {
  OutputOrder order(OutputOrder::Mode::group, false, *streams_, budget_);
  order.started(1, true, "a\t");
  order.output(1, Stream::out, "x\ny");
  order.output(1, Stream::out, "z\n");
  order.output(1, Stream::err, "e\n");
  order.ended(1, true, "");
  EXPECT_EQ(read("out"), "a\tx\na\tyz\n");
  EXPECT_EQ(read("err"), "a\te\n");
}

}  // namespace
}  // namespace ferry::run
