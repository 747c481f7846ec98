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

// Found by fuzz/query_fuzzer: a range ending at the largest id, when ids go
// that high, counted past it and wrapped around (no end, memory ran out).
TEST(ApiJson, ARangeMayEndAtTheLargestId) {
  constexpr JobId kTop = std::numeric_limits<JobId>::max();
  EXPECT_EQ(parse_event_query("ids=18446744073709551615", 10, kTop).ids,
            (std::vector<JobId>{kTop}));
  EXPECT_EQ(parse_event_query("ids=18446744073709551613-18446744073709551615", 10, kTop).ids,
            (std::vector<JobId>{kTop - 2, kTop - 1, kTop}));
}

// Found by fuzz/job_spec_fuzzer (the same reading of numbers): a result
// beyond a double's range was kept as `Infinity`, which is not JSON. It is
// refused, alone: a worker's other reports go on.
TEST(ApiJson, AResultBeyondADoubleIsRefusedAlone) {
  LeaseRequest request = parse_lease(
      R"({"worker":"w","completions":[{"job":1,"token":5,"succeeded":true,"result":[1e400]},)"
      R"({"job":2,"token":6,"succeeded":true,"result":)" +
          std::string(400, '9') + "}]}",
      10);
  ASSERT_EQ(request.rejected.size(), 2u);
  EXPECT_EQ(request.rejected[0].error,
            "completions[0].result: must not hold a number beyond the range of a double");
  EXPECT_EQ(request.rejected[1].job, JobId{2});
  EXPECT_TRUE(request.completions.empty());
}

// Found by fuzz/render_fuzzer: views of a job read its spec and results
// back with Boost.JSON's own reading of numbers, slightly off for some, so
// they could show numbers other than those accepted.
TEST(ApiJson, ViewsShowNumbersAsAccepted) {
  JobSpec spec = parse_job_spec(
      R"({"call": {"function": "f", "args": [118446744073709551615, 2.184467440737095516155]}})");
  const std::string args = std::get<CallSpec>(spec.work).args_json;
  const std::string shown = R"("args":)" + args;
  JobView job{.id = 1, .spec_json = to_json(spec), .state = sched::State::succeeded};
  EXPECT_NE(render_job(job).find(shown), std::string::npos) << render_job(job);
  EXPECT_NE(render_job_list({.jobs = {job}}).find(shown), std::string::npos);
  Completion report{.result_json = args};
  const std::string reason;
  JobEvent event{
      .id = 1, .state = sched::State::succeeded, .reason = &reason, .last_report = &report};
  EXPECT_NE(render_event(event, true).find(R"("result":)" + args), std::string::npos)
      << render_event(event, true);
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

// Found by fuzz/submit_fuzzer: an empty key given twice was refused as a
// syntax error, which valid JSON has none of.
TEST(ApiJson, AnEmptyKeyGivenTwiceIsNamedAsSuch) {
  EXPECT_EQ(refusal([] { parse_submit(R"({"command":{"argv":["true"]},"":1,"":2})", {}); }),
            "the body is not valid: an object has the key '' twice");
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
