#include "ferry/detail/shared_region.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

#include "ferry/error.hpp"
#include "shm/test_support.hpp"

namespace ferry::detail {
namespace {

using testing::run_processes;
using testing::test_name;

class SharedRegionTest : public testing::SharedTest {};

TEST_F(SharedRegionTest, AnonymousMemoryIsSharedWithForkedProcesses) {
  auto region = SharedRegion::anonymous(4096);
  EXPECT_TRUE(region.name().empty());
  auto* word = reinterpret_cast<std::atomic<int>*>(region.data());
  auto codes = run_processes(4, [&](int) { word->fetch_add(1); });
  EXPECT_EQ(codes, std::vector<int>(4, 0));
  EXPECT_EQ(word->load(), 4);
}

TEST_F(SharedRegionTest, CopiesShareOneMappingAndTheLastOneUnmaps) {
  std::string name = test_name("region");
  SharedRegion copy;
  {
    auto region = SharedRegion::create(name, 100);
    copy = region;
  }
  // The creator's name lives as long as a copy does.
  EXPECT_EQ(SharedRegion::attach(name).size(), 100u);
  std::memset(copy.data(), 1, 100);
  copy.reset();
  EXPECT_THROW(SharedRegion::attach(name), Error);
}

TEST_F(SharedRegionTest, AForkedChildNeverRemovesTheName) {
  std::string name = test_name("child-keeps");
  auto region = SharedRegion::create(name, 100);
  auto codes = run_processes(1, [&](int) {
    region.reset();  // the child's copy of the handle goes away
    std::exit(0);
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(SharedRegion::attach(name).size(), 100u);
}

TEST_F(SharedRegionTest, ANameRecreatedByAnotherIsNotRemovedByTheFirstCreator) {
  std::string name = test_name("recreated");
  auto first = SharedRegion::create(name, 100);
  SharedRegion::attach(name).unlink();  // another process removes the name...
  auto second = SharedRegion::create(name, 200);
  first.reset();  // ...so the first creator's handle must not remove the new one
  EXPECT_EQ(SharedRegion::attach(name).size(), 200u);
}

TEST_F(SharedRegionTest, FreshNamesAreUnique) {
  EXPECT_NE(fresh_name(), fresh_name());
  EXPECT_EQ(hash_type_name("long"), hash_type_name("long"));
  EXPECT_NE(hash_type_name("long"), hash_type_name("double"));
}

}  // namespace
}  // namespace ferry::detail
