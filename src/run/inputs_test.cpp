#include "run/inputs.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ferry::run {
namespace {

using Strings = std::vector<std::string>;

TEST(SplitCommandLine, CommandThenGroups) {
  auto line = split_command_line({"echo", "-n", "{}", ":::", "a", "b", ":::", "1", "::::", "f"});
  EXPECT_EQ(line.command, (Strings{"echo", "-n", "{}"}));
  ASSERT_EQ(line.sources.size(), 3u);
  EXPECT_EQ(line.sources[0].values, (Strings{"a", "b"}));
  EXPECT_EQ(line.sources[1].values, (Strings{"1"}));
  EXPECT_EQ(line.sources[2].kind, InputSource::Kind::file);
  EXPECT_EQ(line.sources[2].path, "f");
}

TEST(SplitCommandLine, SeveralFilesAfterFourColons) {
  auto line = split_command_line({"cat", "::::", "a", "b", ":::", "x"});
  ASSERT_EQ(line.sources.size(), 3u);
  EXPECT_EQ(line.sources[1].path, "b");
  EXPECT_EQ(line.sources[2].values, (Strings{"x"}));
}

TEST(SplitCommandLine, Errors) {
  EXPECT_THROW(split_command_line({"cat", "::::"}), UsageError);
  auto no_command = split_command_line({":::", "echo a"});
  EXPECT_TRUE(no_command.command.empty());
}

TEST(InputTable, CrossProductFirstGroupSlowest) {
  InputTable table({{"a", "b"}, {"1", "2", "3"}});
  ASSERT_EQ(table.size(), 6u);
  EXPECT_EQ(table.row(0), (Strings{"a", "1"}));
  EXPECT_EQ(table.row(2), (Strings{"a", "3"}));
  EXPECT_EQ(table.row(3), (Strings{"b", "1"}));
  EXPECT_EQ(table.row(5), (Strings{"b", "3"}));
}

TEST(InputTable, AnEmptyGroupMeansNoJobs) {
  EXPECT_EQ(InputTable({{"a"}, {}}).size(), 0u);
  EXPECT_EQ(InputTable({}).size(), 0u);
}

TEST(LoadInputs, StdinFilesAndLines) {
  auto dir = std::filesystem::temp_directory_path() / "ferry-inputs-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "list") << "x\n\ny z\n";
  std::istringstream stdin_stream("s1\ns2\n");
  InputSource file{InputSource::Kind::file, {}, (dir / "list").string()};
  InputSource from_stdin{InputSource::Kind::file, {}, "-"};
  InputTable table = load_inputs({file, from_stdin}, stdin_stream);
  ASSERT_EQ(table.size(), 4u);
  EXPECT_EQ(table.row(1), (Strings{"x", "s2"}));
  EXPECT_EQ(table.row(2), (Strings{"y z", "s1"}));

  std::istringstream plain("only\n");
  EXPECT_EQ(load_inputs({}, plain).row(0), (Strings{"only"}));

  InputSource missing{InputSource::Kind::file, {}, (dir / "missing").string()};
  EXPECT_THROW(load_inputs({missing}, plain), UsageError);
  EXPECT_THROW(load_inputs({from_stdin, from_stdin}, plain), UsageError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::run
