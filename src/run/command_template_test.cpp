#include "run/command_template.hpp"

#include <gtest/gtest.h>

#include "run/inputs.hpp"

namespace ferry::run {
namespace {

using Strings = std::vector<std::string>;

TEST(ShellQuote, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(shell_quote("plain-1.txt"), "plain-1.txt");
  EXPECT_EQ(shell_quote("two words"), "'two words'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
}

TEST(CommandTemplate, ArgvWordsAreNeverSplit) {
  CommandTemplate t({"echo", "x{}y", "{}"}, false);
  auto r = t.render({"a b"}, 1, 1);
  EXPECT_EQ(r.argv, (Strings{"echo", "xa by", "a b"}));
  EXPECT_EQ(r.display, "echo 'xa by' 'a b'");
}

TEST(CommandTemplate, AppendsArgumentsWhenNoPlaceholder) {
  EXPECT_EQ(CommandTemplate({"echo", "-n"}, false).render({"a", "1"}, 1, 1).argv,
            (Strings{"echo", "-n", "a", "1"}));
  EXPECT_EQ(CommandTemplate({"echo {#}"}, true).render({"a b"}, 4, 1).argv,
            (Strings{"/bin/sh", "-c", "echo 4 'a b'"}));
}

TEST(CommandTemplate, PositionalSeqAndSlot) {
  CommandTemplate t({"run", "{2}-{1}", "{#}", "{%}", "{}"}, false);
  EXPECT_EQ(t.render({"a", "b"}, 7, 3).argv, (Strings{"run", "b-a", "7", "3", "a b"}));
}

TEST(CommandTemplate, PathModifiers) {
  CommandTemplate t({"{.}", "{/}", "{//}", "{/.}", "{1/.}"}, false);
  EXPECT_EQ(t.render({"dir/sub/file.tar.gz"}, 1, 1).argv,
            (Strings{"dir/sub/file.tar", "file.tar.gz", "dir/sub", "file.tar", "file.tar"}));
  EXPECT_EQ(t.render({"file"}, 1, 1).argv, (Strings{"file", "file", ".", "file", "file"}));
  EXPECT_EQ(t.render({"/x.d/.rc"}, 1, 1).argv, (Strings{"/x.d/.rc", ".rc", "/x.d", ".rc", ".rc"}));
}

TEST(CommandTemplate, UnknownBracesStayAsWritten) {
  CommandTemplate t({"awk", "{print $1}", "${HOME}", "{0}", "{x"}, false);
  EXPECT_EQ(t.render({"f"}, 1, 1).argv,
            (Strings{"awk", "{print $1}", "${HOME}", "{0}", "{x", "f"}));
}

TEST(CommandTemplate, ShellModeQuotesArgumentsOnly) {
  CommandTemplate t({"echo {} > out-{#}.txt"}, true);
  auto r = t.render({"it's; rm -rf /"}, 2, 1);
  EXPECT_EQ(r.argv, (Strings{"/bin/sh", "-c", "echo 'it'\\''s; rm -rf /' > out-2.txt"}));
  EXPECT_EQ(r.display, "echo 'it'\\''s; rm -rf /' > out-2.txt");
}

TEST(CommandTemplate, EmptyCommandRunsInputsAsShellCommands) {
  auto r = CommandTemplate({}, false).render({"echo a | tr a b"}, 1, 1);
  EXPECT_EQ(r.argv, (Strings{"/bin/sh", "-c", "echo a | tr a b"}));
}

TEST(CommandTemplate, GroupBeyondTheInputsIsAUsageError) {
  EXPECT_THROW(CommandTemplate({"echo", "{3}"}, false).render({"a"}, 1, 1), UsageError);
}

}  // namespace
}  // namespace ferry::run
