#include "run/joblog.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run/inputs.hpp"

namespace ferry::run {
namespace {

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class JoblogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry-joblog-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "log").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

TEST(JoblogFormat, RowHasParallelsColumns) {
  JoblogRow row{3, ":", 1700000000.5, 0.25, 0, 12, 1, 0, "echo a"};
  EXPECT_EQ(format_row(row), "3\t:\t1700000000.500\t0.250\t0\t12\t1\t0\techo a\n");
}

TEST_F(JoblogTest, WritesHeaderOnceAndReadsSuccesses) {
  {
    Joblog log(path_, false);
    log.append({1, ":", 1, 1, 0, 0, 0, 0, "ok"});
    log.append({2, ":", 1, 1, 0, 0, 1, 0, "fails"});
    log.append({3, ":", 1, 1, 0, 0, -1, 9, "killed"});
  }
  {
    Joblog log(path_, true);  // resume: appended, no second header
    log.append({2, ":", 2, 1, 0, 0, 0, 0, "fails"});
  }
  std::string text = slurp(path_);
  EXPECT_EQ(text.rfind(kJoblogHeader, 0), 0u);
  EXPECT_EQ(text.find("Seq", 1), std::string::npos);
  EXPECT_EQ(read_joblog(path_).succeeded, (std::set<std::uint64_t>{1, 2}));
  EXPECT_EQ(read_joblog(path_).recorded, (std::set<std::uint64_t>{1, 2, 3}));

  Joblog fresh(path_, false);  // without resume the log starts over
  EXPECT_TRUE(read_joblog(path_).recorded.empty());
}

TEST_F(JoblogTest, IgnoresATornLastLine) {
  std::ofstream(path_) << kJoblogHeader << "\n1\t:\t1\t1\t0\t0\t0\t0\ta\n2\t:\t1\t1\t0\t0\t0";
  EXPECT_EQ(read_joblog(path_).succeeded, (std::set<std::uint64_t>{1}));
  {
    Joblog resumed(path_, true);  // cuts the torn fragment before appending
    resumed.append({2, ":", 2, 1, 0, 0, 0, 0, "b"});
  }
  EXPECT_EQ(read_joblog(path_).succeeded, (std::set<std::uint64_t>{1, 2}));
  EXPECT_EQ(slurp(path_), std::string(kJoblogHeader) +
                              "\n1\t:\t1\t1\t0\t0\t0\t0\ta\n2\t:\t2.000\t1.000\t0\t0\t0\t0\tb\n");
}

TEST_F(JoblogTest, ATornHeaderStartsTheFileOver) {
  std::ofstream(path_) << "Seq\tHost\tStart";
  {
    Joblog resumed(path_, true);
    resumed.append({1, ":", 1, 1, 0, 0, 0, 0, "a"});
  }
  EXPECT_EQ(read_joblog(path_).succeeded, (std::set<std::uint64_t>{1}));
}

TEST_F(JoblogTest, RejectsFilesThatAreNotJoblogs) {
  EXPECT_TRUE(read_joblog((dir_ / "missing").string()).recorded.empty());
  std::ofstream(path_) << "hello\n";
  EXPECT_THROW(read_joblog(path_), UsageError);
  std::ofstream(path_) << kJoblogHeader << "\nx\t:\n";
  EXPECT_THROW(read_joblog(path_), UsageError);
  EXPECT_THROW(Joblog((dir_ / "no" / "such" / "dir").string(), false), UsageError);
}

}  // namespace
}  // namespace ferry::run
