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
  EXPECT_EQ(CommandTemplate({"echo"}, true).render({"a b"}, 4, 1).argv,
            (Strings{"/bin/sh", "-c", "echo 'a b'"}));
}

// As in GNU parallel: any replacement string, {#} and {%} too, means the
// command says where its inputs go; nothing is appended.
TEST(CommandTemplate, AnyReplacementStringStopsAppending) {
  EXPECT_EQ(CommandTemplate({"echo", "{#}"}, false).render({"A"}, 1, 1).argv,
            (Strings{"echo", "1"}));
  EXPECT_EQ(CommandTemplate({"echo {%}"}, true).render({"A"}, 1, 2).argv,
            (Strings{"/bin/sh", "-c", "echo 2"}));
  EXPECT_EQ(CommandTemplate({"echo", "{-1}", "{-2.}"}, false).render({"a.x", "b"}, 1, 1).argv,
            (Strings{"echo", "b", "a"}));
}

TEST(CommandTemplate, PerlExpressionsAreRefused) {
  EXPECT_THROW(CommandTemplate({"echo", "{=s/a/b/=}"}, false), UsageError);
  EXPECT_NO_THROW(CommandTemplate({"awk", "{x=1}"}, false));
}

TEST(CommandTemplate, PositionalSeqAndSlot) {
  CommandTemplate t({"run", "{2}-{1}", "{#}", "{%}", "{}"}, false);
  EXPECT_EQ(t.render({"a", "b"}, 7, 3).argv, (Strings{"run", "b-a", "7", "3", "a", "b"}));
}

// {} with several values makes words as a shell splits `pre-{}-post`, as in
// GNU parallel; -X repeats the word instead; -I names another {}.
TEST(CommandTemplate, SeveralValuesContextReplaceAndOtherNames) {
  EXPECT_EQ(CommandTemplate({"echo", "pre-{}-post"}, false).render({"a", "b"}, 1, 1).argv,
            (Strings{"echo", "pre-a", "b-post"}));
  EXPECT_EQ(CommandTemplate({"echo", "pre-{}-post"}, false, {.context_replace = true})
                .render({"a", "b"}, 1, 1)
                .argv,
            (Strings{"echo", "pre-a-post", "pre-b-post"}));
  EXPECT_EQ(CommandTemplate({"echo", "XX-{}"}, false, {.replace = "XX"}).render({"a"}, 1, 1).argv,
            (Strings{"echo", "a-{}"}));
  EXPECT_EQ(CommandTemplate({"echo", "{h2}{h1}"}, false, {.column_names = {"h1", "h2"}})
                .render({"1", "2"}, 1, 1)
                .argv,
            (Strings{"echo", "21"}));
}

TEST(CommandTemplate, PathModifiers) {
  CommandTemplate t({"{.}", "{/}", "{//}", "{/.}", "{1/.}"}, false);
  EXPECT_EQ(t.render({"dir/sub/file.tar.gz"}, 1, 1).argv,
            (Strings{"dir/sub/file.tar", "file.tar.gz", "dir/sub", "file.tar", "file.tar"}));
  EXPECT_EQ(t.render({"file"}, 1, 1).argv, (Strings{"file", "file", ".", "file", "file"}));
  EXPECT_EQ(t.render({"/x.d/.rc"}, 1, 1).argv, (Strings{"/x.d/.rc", ".rc", "/x.d", ".rc", ".rc"}));
  // Decided: a leading dot starts no extension (parallel: {.} of .bashrc is
  // empty); {/} and {//} are basename(1) and dirname(1).
  EXPECT_EQ(t.render({".bashrc"}, 1, 1).argv,
            (Strings{".bashrc", ".bashrc", ".", ".bashrc", ".bashrc"}));
  EXPECT_EQ(t.render({"dir/"}, 1, 1).argv, (Strings{"dir/", "dir", ".", "dir", "dir"}));
  EXPECT_EQ(t.render({"/"}, 1, 1).argv, (Strings{"/", "/", "/", "/", "/"}));
  EXPECT_EQ(t.render({"a//b.c"}, 1, 1).argv, (Strings{"a//b", "b.c", "a", "b", "b"}));
}

TEST(CommandTemplate, UnknownBracesStayAsWritten) {
  CommandTemplate t({"awk", "{print $1}", "${HOME}", "{0}", "{x"}, false);
  EXPECT_EQ(t.render({"f"}, 1, 1).argv,
            (Strings{"awk", "{print $1}", "${HOME}", "{0}", "{x", "f"}));
}

TEST(CommandTemplate, DisplayIsOneLineOfShThatRunsTheSame) {
  EXPECT_EQ(command_line_for_sh({"printf", "%s", "it's"}), "printf %s 'it'\\''s'");
  EXPECT_EQ(command_line_for_sh({"echo", "a\tb", "c\n"}),
            "ferry_1=$(printf 'a\\011b.'); ferry_1=${ferry_1%.}; "
            "ferry_2=$(printf 'c\\012.'); ferry_2=${ferry_2%.}; echo \"$ferry_1\" \"$ferry_2\"");
  EXPECT_EQ(script_line_for_sh("echo 1\necho 2"),
            "ferry_script=$(printf 'echo 1\\012echo 2.'); ferry_script=${ferry_script%.}; "
            "eval \"$ferry_script\"");
}

TEST(CommandTemplate, ShellHintForAOneWordShellCommand) {
  EXPECT_TRUE(shell_hint({"gzip -9 {} && echo done"}));
  EXPECT_FALSE(shell_hint({"echo"}));
  EXPECT_FALSE(shell_hint({"gzip", "-9"}));
  EXPECT_FALSE(shell_hint({"{}"}));
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
