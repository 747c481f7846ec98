#include "run/inputs.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

TEST(SplitCommandLine, SeveralFilesAfterFourColonsAndLinks) {
  auto line = split_command_line({"cat", "::::", "a", "b", ":::+", "x"});
  ASSERT_EQ(line.sources.size(), 3u);
  EXPECT_EQ(line.sources[1].path, "b");
  EXPECT_EQ(line.sources[2].values, (Strings{"x"}));
  EXPECT_TRUE(line.sources[2].linked);
}

TEST(SplitCommandLine, Errors) {
  EXPECT_THROW(split_command_line({"cat", "::::"}), UsageError);
  EXPECT_THROW(split_command_line({"cat", ":::+", "a"}), UsageError);
  auto no_command = split_command_line({":::", "echo a"});
  EXPECT_TRUE(no_command.command.empty());
}

// A pipe the test writes to, as stdin would be.
struct Pipe {
  int fds[2];
  Pipe() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
  ~Pipe() {
    ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  void write(const std::string& text) {
    ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void close_writer() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

std::vector<Strings> all_args(InputRows& rows) {
  std::vector<Strings> out;
  for (Row& row : read_all_rows(rows)) out.push_back(row.args);
  return out;
}

TEST(RecordReader, RecordsArriveAsTheyAreWritten) {
  Pipe pipe;
  RecordReader reader(pipe.fds[0], '\n', false);
  EXPECT_TRUE(reader.pollable());
  EXPECT_EQ(reader.next(), std::nullopt);
  pipe.write("one\ntw");
  reader.fill();
  EXPECT_EQ(reader.next(), "one");
  EXPECT_EQ(reader.next(), std::nullopt);
  pipe.write("o\n\nlast\r");
  reader.fill();
  EXPECT_EQ(reader.next(), "two");
  EXPECT_EQ(reader.next(), "");  // an empty line is an empty argument, as in parallel
  EXPECT_EQ(reader.next(), std::nullopt);
  pipe.close_writer();
  reader.fill();
  EXPECT_EQ(reader.next(), "last\r");  // no delimiter at the end; the \r is kept
  EXPECT_EQ(reader.next(), std::nullopt);
  EXPECT_TRUE(reader.at_end());
}

TEST(InputRows, TheFirstGroupStreamsOthersCross) {
  Pipe pipe;
  InputSource from_stdin{InputSource::Kind::file, {}, "-"};
  InputSource numbers{InputSource::Kind::arguments, {"1", "2"}, ""};
  InputRows rows({from_stdin, numbers}, {}, pipe.fds[0]);
  EXPECT_EQ(rows.wait_fd(), pipe.fds[0]);
  Row row;
  EXPECT_EQ(rows.next(row), InputRows::Status::need_input);
  pipe.write("a\n");
  rows.fill();
  ASSERT_EQ(rows.next(row), InputRows::Status::row);
  EXPECT_EQ(row.args, (Strings{"a", "1"}));
  ASSERT_EQ(rows.next(row), InputRows::Status::row);
  EXPECT_EQ(row.args, (Strings{"a", "2"}));
  EXPECT_EQ(rows.next(row), InputRows::Status::need_input);
  pipe.write("b\n");
  pipe.close_writer();
  rows.fill();
  ASSERT_EQ(rows.next(row), InputRows::Status::row);
  EXPECT_EQ(row.args, (Strings{"b", "1"}));
  ASSERT_EQ(rows.next(row), InputRows::Status::row);
  EXPECT_EQ(rows.next(row), InputRows::Status::need_input);
  rows.fill();
  EXPECT_EQ(rows.next(row), InputRows::Status::end);
}

TEST(InputRows, CrossProductFirstGroupSlowest) {
  InputRows rows({{InputSource::Kind::arguments, {"a", "b"}, ""},
                  {InputSource::Kind::arguments, {"1", "2", "3"}, ""}},
                 {}, -1);
  EXPECT_EQ(all_args(rows),
            (std::vector<Strings>{
                {"a", "1"}, {"a", "2"}, {"a", "3"}, {"b", "1"}, {"b", "2"}, {"b", "3"}}));
}

TEST(InputRows, LinkedGroupsPairAndTheShorterWraps) {
  InputRows rows({{InputSource::Kind::arguments, {"a", "b", "c"}, ""},
                  {InputSource::Kind::arguments, {"1", "2"}, "", true}},
                 {}, -1);
  EXPECT_EQ(all_args(rows), (std::vector<Strings>{{"a", "1"}, {"b", "2"}, {"c", "1"}}));
}

TEST(InputRows, AnEmptyGroupMeansNoJobs) {
  InputRows rows(
      {{InputSource::Kind::arguments, {"a"}, ""}, {InputSource::Kind::arguments, {}, ""}}, {}, -1);
  EXPECT_TRUE(all_args(rows).empty());
}

TEST(InputRows, FilesSkipBlankLinesWithREndAtE) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ferry-inputs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "list") << "x\n \ny z\nEND\nafter\n";
  InputSource file{InputSource::Kind::file, {}, (dir / "list").string()};
  InputRows plain({file}, {}, -1);
  EXPECT_EQ(plain.wait_fd(), -1);  // a regular file never needs waiting for
  EXPECT_EQ(all_args(plain).size(), 5u);
  InputRows skipping({file}, {.skip_empty = true, .end_of_file = "END"}, -1);
  EXPECT_EQ(all_args(skipping), (std::vector<Strings>{{"x"}, {"y z"}}));
  InputOptions nul_separated{.delimiter = '\0'};
  std::ofstream(dir / "nul", std::ios::binary) << std::string("a\nb\0c", 5);
  InputRows nul_rows({{InputSource::Kind::file, {}, (dir / "nul").string()}}, nul_separated, -1);
  EXPECT_EQ(all_args(nul_rows), (std::vector<Strings>{{"a\nb"}, {"c"}}));
  EXPECT_THROW(InputRows({{InputSource::Kind::file, {}, (dir / "missing").string()}}, {}, -1),
               UsageError);
  InputSource from_stdin{InputSource::Kind::file, {}, "-"};
  EXPECT_THROW(InputRows({from_stdin, from_stdin}, {}, 0), UsageError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::run
