#include "server/api_json.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace ferry::server {
namespace {

// The message of the SpecError `parse` throws; "" when none.
template <class Parse>
std::string refusal(Parse parse) {
  try {
    parse();
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

TEST(ApiJson, EventIdsAreCheckedAgainstTheHighestJob) {
  constexpr JobId kTop = std::numeric_limits<JobId>::max();
  EventFilter filter = parse_event_query("ids=1-3,7", 100, 10);
  EXPECT_EQ(filter.ids, (std::vector<JobId>{1, 2, 3, 7}));
  EXPECT_FALSE(filter.missing);
  EXPECT_EQ(parse_event_query("ids=8-20,30", 100, 10).missing, JobId{11});
  EXPECT_EQ(parse_event_query("ids=18446744073709551615", 100, 10).missing, kTop);
  EXPECT_EQ(parse_event_query("ids=1-18446744073709551615", 100, 10).ids->size(), 10u);
  EXPECT_EQ(refusal([] { parse_event_query("ids=1-200", 100, 1000); }),
            "ids: names more than 100 jobs");
  EXPECT_EQ(refusal([] { parse_event_query("ids=1-18446744073709551616", 100, 1000); }),
            "ids: '1-18446744073709551616' is neither a job id nor a range FIRST-LAST");
  EXPECT_EQ(refusal([] { parse_event_query("ids=1&ids=2", 100, 1000); }), "ids: is given twice");
}

TEST(ApiJson, IdsHaveOneSpelling) {
  EXPECT_EQ(parse_job_id("17"), JobId{17});
  for (const char* text : {"017", "0", "", "-1", "+1", "1x", "18446744073709551616"})
    EXPECT_FALSE(parse_job_id(text)) << text;
}

TEST(ApiJson, ListQueriesAreStrict) {
  ListQuery query = parse_list_query("state=failed&before=40&limit=5");
  EXPECT_EQ(query.before, JobId{40});
  EXPECT_EQ(query.limit, 5u);
  for (const char* bad : {"before=0", "before=-1", "before=99999999999999999999", "before=",
                          "limit=0", "limit=1001", "limit=05", "state=failed&state=queued"})
    EXPECT_NE(refusal([&] { parse_list_query(bad); }), "") << bad;
}

TEST(ApiJson, WorkerListingsArePaged) {
  WorkersQuery query = parse_workers_query("after=host-7&limit=2");
  EXPECT_EQ(query.after, "host-7");
  EXPECT_EQ(query.limit, 2u);
  EXPECT_EQ(parse_workers_query("").limit, 1000u);
  EXPECT_NE(refusal([] { parse_workers_query("colour=red"); }), "");
}

TEST(ApiJson, DuplicateKeysAreRefused) {
  EXPECT_EQ(refusal([] {
              parse_submit(R"({"command":{"argv":["true"]},"command":{"shell":"exit 7"}})", {});
            }),
            "the body is not valid: an object has the key 'command' twice");
  EXPECT_NE(refusal([] { parse_lease(R"({"worker":"w","worker":"v"})", 10); }), "");
  // The same key in different objects is fine.
  EXPECT_EQ(parse_submit(R"({"jobs":[{"command":{"argv":["a"]}},{"command":{"argv":["b"]}}]})", {})
                .jobs.size(),
            2u);
}

TEST(ApiJson, AReportIsMendedOrRefusedAloneNeverTheWholeRequest) {
  LeaseRequest request = parse_lease(
      R"({"worker":"w","completions":[)"
      R"({"job":1,"token":5,"succeeded":true,"cpu_us":0,"max_rss_kb":0,"stdout":"a\u0000b"},)"
      R"({"job":2,"token":6,"succeeded":true,"exit_code":300},)"
      R"({"job":3,"token":7,"succeeded":false,"result":)" +
          std::string(40, '[') + std::string(40, ']') + "}]}",
      10);
  ASSERT_EQ(request.completions.size(), 1u);
  EXPECT_EQ(request.completions[0].stdout_tail,
            "a\xEF\xBF\xBD"
            "b");
  ASSERT_EQ(request.rejected.size(), 2u);
  EXPECT_EQ(request.rejected[0].index, 1u);
  EXPECT_EQ(request.rejected[0].job, JobId{2});
  EXPECT_EQ(request.rejected[0].token, 6u);
  EXPECT_EQ(request.rejected[0].error, "completions[1].exit_code: must be from -1 to 255");
  EXPECT_EQ(request.rejected[1].error,
            "completions[2].result: must not nest deeper than 32 levels");
  // Output past the limit keeps its tail; a long reason its head.
  LeaseRequest long_one = parse_lease(R"({"worker":"w","completions":[{"job":1,"token":5,)"
                                      R"("succeeded":true,"stdout":")" +
                                          std::string(70'000, 'x') + R"(y","reason":")" +
                                          std::string(5000, 'r') + R"("}]})",
                                      10);
  ASSERT_EQ(long_one.completions.size(), 1u);
  EXPECT_EQ(long_one.completions[0].stdout_tail.size(), 64u * 1024);
  EXPECT_EQ(long_one.completions[0].stdout_tail.back(), 'y');
  EXPECT_EQ(long_one.completions[0].reason.size(), 4096u);
}

}  // namespace
}  // namespace ferry::server
