#include "sched/id_map.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>

namespace ferry::sched {
namespace {

TEST(IdMap, FindsInsertsAndErases) {
  IdMap<std::string> map;
  EXPECT_EQ(map.find(1), nullptr);
  EXPECT_FALSE(map.erase(1));
  std::string& one = map.insert(1, "one");
  map.insert(2, "two");
  EXPECT_EQ(&one, map.find(1));
  EXPECT_EQ(*map.find(2), "two");
  EXPECT_TRUE(map.erase(1));
  EXPECT_FALSE(map.contains(1));
  EXPECT_FALSE(map.erase(1));
  EXPECT_EQ(map.size(), 1u);
}

TEST(IdMap, ValuesStayPutWhileTheTableGrows) {
  IdMap<int> map;
  int* first = &map.insert(7, 70);
  for (JobId id = 100; id < 10'000; ++id) map.insert(id, static_cast<int>(id));
  EXPECT_EQ(map.find(7), first);
  EXPECT_EQ(*first, 70);
}

// Against std::unordered_map, through random inserts and erases, with ids
// that crowd the same slots: consecutive ones, and steps of a power of two.
TEST(IdMap, AgreesWithAReferenceMapThroughChurn) {
  for (JobId step : {JobId{1}, JobId{1} << 20}) {
    IdMap<JobId> map;
    std::unordered_map<JobId, JobId> reference;
    std::mt19937_64 random(step);
    for (int round = 0; round < 200'000; ++round) {
      JobId id = step * (1 + random() % 5'000);
      if (random() % 3 != 0 && !reference.contains(id)) {
        map.insert(id, id * 3);
        reference[id] = id * 3;
      } else {
        ASSERT_EQ(map.erase(id), reference.erase(id) == 1) << id;
      }
      JobId probe = step * (1 + random() % 5'000);
      const JobId* found = map.find(probe);
      auto expected = reference.find(probe);
      ASSERT_EQ(found != nullptr, expected != reference.end())
          << "round " << round << " id " << probe;
      if (found) {
        ASSERT_EQ(*found, expected->second);
      }
    }
    EXPECT_EQ(map.size(), reference.size());
    for (const auto& [id, value] : reference) ASSERT_EQ(*map.find(id), value);
  }
}

}  // namespace
}  // namespace ferry::sched
