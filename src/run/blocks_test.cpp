#include "run/blocks.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

namespace ferry::run {
namespace {

std::vector<std::string> blocks_of(const std::string& input, std::size_t size,
                                   const std::string& recstart, const std::string& recend) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  EXPECT_EQ(::write(fds[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  ::close(fds[1]);
  BlockReader reader(fds[0], size, recstart, recend);
  std::vector<std::string> blocks;
  for (int guard = 0; guard < 10000 && !reader.at_end(); ++guard) {
    if (auto block = reader.next())
      blocks.push_back(*block);
    else
      reader.fill();
  }
  ::close(fds[0]);
  return blocks;
}

TEST(BlockReader, CutsAtTheFirstRecordEndPastTheBlockSize) {
  EXPECT_EQ(blocks_of("aa\nbb\ncc\ndd\n", 4, "", "\n"),
            (std::vector<std::string>{"aa\nbb\n", "cc\ndd\n"}));
  EXPECT_EQ(blocks_of("one\ntwo", 100, "", "\n"), (std::vector<std::string>{"one\ntwo"}));
  EXPECT_TRUE(blocks_of("", 4, "", "\n").empty());
}

TEST(BlockReader, RecordStartsAndEnds) {
  EXPECT_EQ(blocks_of(">a\nx\n>b\ny\n>c\n", 3, ">", ""),
            (std::vector<std::string>{">a\nx\n", ">b\ny\n", ">c\n"}));
  EXPECT_EQ(blocks_of("a;b;;c;", 2, "", ";;"), (std::vector<std::string>{"a;b;;", "c;"}));
}

}  // namespace
}  // namespace ferry::run
