#include "run/result_files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ferry::run {
namespace {

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class ResultFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-results-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ResultFilesTest, ParallelsLayout) {
  {
    auto files = ResultFiles::for_results(dir_.string(), {"a/b", "x"}, 7);
    EXPECT_TRUE(files->keeps(exec::Stream::err));
    files->write(exec::Stream::out, "out");
    files->write(exec::Stream::err, "err");
  }
  auto job = dir_ / "1" / "a\\_b" / "2" / "x";
  EXPECT_EQ(slurp(job / "stdout"), "out");
  EXPECT_EQ(slurp(job / "stderr"), "err");
  EXPECT_EQ(slurp(job / "seq"), "7");
  EXPECT_EQ(results_component(""), "\\0");
  EXPECT_EQ(results_component("a\\b"), "a\\\\b");
}

TEST_F(ResultFilesTest, FilesKeepStdoutOnly) {
  std::string name;
  {
    auto files = ResultFiles::for_files(dir_.string());
    EXPECT_FALSE(files->keeps(exec::Stream::err));
    files->write(exec::Stream::out, "kept");
    name = files->name();
  }
  EXPECT_EQ(name.rfind((dir_ / "par").string(), 0), 0u);
  EXPECT_EQ(slurp(name), "kept");
}

}  // namespace
}  // namespace ferry::run
