#include "run/spool.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ferry::run {
namespace {

std::string drained(Spool& spool) {
  std::string all;
  spool.drain([&](std::string_view piece) { all.append(piece); });
  return all;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-spool-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    budget_.directory = dir_.string();
    budget_.per_spool = 10;
    budget_.total = 15;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  SpoolBudget budget_;
};

TEST_F(SpoolTest, SmallOutputStaysInMemory) {
  Spool spool(budget_);
  spool.append("hello");
  EXPECT_FALSE(spool.spilled());
  EXPECT_EQ(budget_.in_memory, 5u);
  EXPECT_EQ(drained(spool), "hello");
  EXPECT_TRUE(spool.empty());
  EXPECT_EQ(budget_.in_memory, 0u);
}

TEST_F(SpoolTest, LargeOutputSpillsToAnUnlinkedFileAndComesBackWhole) {
  Spool spool(budget_);
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    std::string piece = std::to_string(i) + ",";
    spool.append(piece);
    expected += piece;
  }
  EXPECT_TRUE(spool.spilled());
  EXPECT_EQ(budget_.in_memory, 0u);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));  // nothing left behind, even on a crash
  EXPECT_EQ(spool.size(), expected.size());
  EXPECT_EQ(drained(spool), expected);
}

TEST_F(SpoolTest, TheSharedBudgetMakesOthersSpill) {
  Spool first(budget_), second(budget_);
  first.append("123456789");  // 9 of the 15 bytes all spools may hold
  second.append("1234567");   // would make 16: spills
  EXPECT_FALSE(first.spilled());
  EXPECT_TRUE(second.spilled());
  Spool moved = std::move(first);
  EXPECT_EQ(drained(moved), "123456789");
  EXPECT_EQ(drained(second), "1234567");
  EXPECT_EQ(budget_.in_memory, 0u);
}

}  // namespace
}  // namespace ferry::run
