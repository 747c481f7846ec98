#include "ferry/shared_memory.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "ferry/lock.hpp"
#include "shm/test_support.hpp"

namespace ferry {
namespace {

using testing::run_processes;
using testing::test_name;

class SharedMemoryTest : public testing::SharedTest {};

TEST_F(SharedMemoryTest, CreateAttachByNameAndSeeTheSameBytes) {
  auto block = SharedMemory::create(4096);
  std::string prefix = "ferry-" + std::to_string(::getpid()) + "-";
  EXPECT_EQ(block.name().rfind(prefix, 0), 0u) << block.name();
  EXPECT_EQ(block.size(), 4096u);
  EXPECT_EQ(block.buf()[100], std::byte{0});  // zeroed
  std::memcpy(block.data(), "hello", 5);
  std::string name = block.name();
  auto codes = run_processes(1, [&](int) {
    auto same = SharedMemory::attach(name);
    if (same.size() != 4096 || std::memcmp(same.data(), "hello", 5) != 0) std::exit(2);
    std::memcpy(same.data() + 5, " back", 5);
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(block.data()), 10), "hello back");
}

TEST_F(SharedMemoryTest, CloseUnlinkAndTheCreatorsName) {
  std::string name = test_name("block");
  {
    auto block = SharedMemory::create(name, 100);
    auto attached = SharedMemory::attach(name);
    attached.close();
    EXPECT_EQ(attached.data(), nullptr);
    EXPECT_EQ(attached.name(), name);
    EXPECT_THROW(SharedMemory::create(name, 100), Error);
  }
  EXPECT_THROW(SharedMemory::attach(name), Error);  // removed with its creator's handle

  auto kept = SharedMemory::create(name, 100);
  kept.buf()[0] = std::byte{42};
  kept.keep_name();
  kept.close();
  kept = SharedMemory::attach(name);
  EXPECT_EQ(kept.buf()[0], std::byte{42});
  kept.unlink();
  EXPECT_THROW(SharedMemory::attach(name), Error);
  EXPECT_EQ(kept.buf()[0], std::byte{42});  // still mapped here
}

TEST_F(SharedMemoryTest, RefusesWhatCannotBe) {
  EXPECT_THROW(SharedMemory::create(0), Error);
  EXPECT_THROW(SharedMemory::create("a/b", 10), Error);
  EXPECT_THROW(SharedMemory::create(std::string(201, 'x'), 10), Error);
  try {
    SharedMemory::attach(test_name("missing"));
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()),
              "no shared memory is named '" + test_name("missing") + "'");
  }
  // Bytes that are not a ferry object are refused by the typed objects.
  std::string name = test_name("bytes");
  auto block = SharedMemory::create(name, 4096);
  std::memset(block.data(), 'x', 4096);
  try {
    Lock::attach(name);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("is not a ferry object"), std::string::npos)
        << error.what();
  }
}

// The names and the bytes are Python's: a Python program attaches to a block
// ferry made.
TEST_F(SharedMemoryTest, PythonAttachesByName) {
  if (std::system("python3 -c 'import multiprocessing.shared_memory' 2>/dev/null") != 0)
    GTEST_SKIP() << "no python3 with multiprocessing.shared_memory";
  auto block = SharedMemory::create(64);
  std::memcpy(block.data(), "ferry", 5);
  // Attaching registers the block with Python's resource tracker, which
  // would remove it at exit: unregister it, as Python's documentation says.
  std::string script =
      "from multiprocessing import shared_memory, resource_tracker\n"
      "block = shared_memory.SharedMemory(name='" +
      block.name() +
      "')\n"
      "resource_tracker.unregister(block._name, 'shared_memory')\n"
      "assert bytes(block.buf[:5]) == b'ferry', bytes(block.buf[:5])\n"
      "block.buf[5:12] = b' python'\n"
      "block.close()\n";
  std::string path = "/tmp/" + test_name("attach.py");
  std::ofstream(path) << script;
  int status = std::system(("python3 " + path).c_str());
  std::remove(path.c_str());
  EXPECT_EQ(status, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(block.data()), 12), "ferry python");
}

}  // namespace
}  // namespace ferry
