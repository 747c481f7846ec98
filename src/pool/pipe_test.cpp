#include "ferry/pipe.hpp"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "ferry/process.hpp"
#include "pool/children.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;

struct Order {
  int id = 0;
  std::string item;
  std::vector<double> prices;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(id, item, prices);
  }
};

class PipeTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(testing::children().empty()) << "a child was leaked"; }
};

TEST_F(PipeTest, BothWaysBetweenTwoProcesses) {
  auto [parent_end, child_end] = Pipe<Order>();
  EXPECT_TRUE(parent_end.readable() && parent_end.writable());
  Process child([&] {
    parent_end.close();
    for (int received = 0; received <= 100; ++received) {
      Order order = child_end.recv();
      if (order.id < 0) break;
      order.item += " (priced)";
      order.prices.push_back(order.id * 1.5);
      child_end.send(order);
    }
  });
  child.start();
  child_end.close();
  for (int id = 0; id < 100; ++id) {
    parent_end.send({id, "item " + std::to_string(id), {}});
    Order reply = parent_end.recv();
    EXPECT_EQ(reply.id, id);
    EXPECT_EQ(reply.item, "item " + std::to_string(id) + " (priced)");
    EXPECT_EQ(reply.prices, std::vector<double>{id * 1.5});
  }
  parent_end.send({-1, "", {}});
  ASSERT_TRUE(child.join(30s));
  EXPECT_EQ(child.exit_code(), 0);
}

TEST_F(PipeTest, OneWayEndsRefuseTheOtherDirection) {
  auto [reader, writer] = Pipe<int>(false);
  EXPECT_TRUE(reader.readable());
  EXPECT_FALSE(reader.writable());
  EXPECT_FALSE(writer.readable());
  EXPECT_TRUE(writer.writable());
  EXPECT_THROW(reader.send(1), Error);
  EXPECT_THROW(writer.recv(), Error);
  EXPECT_THROW(writer.poll(), Error);
  writer.send(7);
  EXPECT_EQ(reader.recv(), 7);
  writer.close();
  EXPECT_THROW(reader.recv(), EOFError);
}

// The end of the conversation, seen from either side: recv() throws
// EOFError once the other end is closed in every process and its messages
// were read; send() throws it at once.
TEST_F(PipeTest, EndOfFileInBothDirections) {
  {
    auto [here, there] = Pipe<std::string>();
    Process sender([&] {
      here.close();
      for (const char* word : {"one", "two", "three"}) there.send(word);
    });  // and exits: its copy of `there` closes
    sender.start();
    there.close();
    EXPECT_EQ(here.recv(), "one");
    EXPECT_EQ(here.recv(), "two");
    EXPECT_EQ(here.recv(), "three");
    EXPECT_THROW(here.recv(), EOFError);
    EXPECT_THROW(here.recv(10ms), EOFError);
    EXPECT_TRUE(here.poll());  // the end is there to read at once
    EXPECT_THROW(here.send("anyone?"), EOFError);
    ASSERT_TRUE(sender.join(30s));
    EXPECT_EQ(sender.exit_code(), 0);
  }
  {
    auto [here, there] = Pipe<std::string>();
    Process receiver([&] {
      here.close();
      try {
        there.recv();
        std::exit(2);
      } catch (const EOFError&) {
        std::exit(7);
      }
    });
    receiver.start();
    here.close();   // this process's copy of the end the receiver reads from
    there.close();  // and of the other end: no process has `here` open
    ASSERT_TRUE(receiver.join(30s));
    EXPECT_EQ(receiver.exit_code(), 7);
  }
}

TEST_F(PipeTest, AnEndLeftOpenInAnotherProcessKeepsThePipeAlive) {
  auto [here, there] = Pipe<int>();
  Process holder([&] { std::this_thread::sleep_for(60s); });  // holds a copy of `there`
  holder.start();
  there.close();
  EXPECT_FALSE(here.recv(20ms));  // no end yet: `there` is open in the holder
  holder.kill();
  ASSERT_TRUE(holder.join(30s));
  EXPECT_THROW(here.recv(), EOFError);
}

TEST_F(PipeTest, EndsAreClosedInExecutedPrograms) {
  auto [here, there] = Pipe<int>();
  Process program = Process::command({"sleep", "60"});
  program.start();
  there.close();
  EXPECT_THROW(here.recv(30s), EOFError) << "the program holds a copy of the other end";
  program.kill();
  program.join();
}

TEST_F(PipeTest, TimeoutsAndPoll) {
  auto [here, there] = Pipe<int>();
  EXPECT_FALSE(here.poll());
  EXPECT_FALSE(here.poll(10ms));
  EXPECT_EQ(here.recv(10ms), std::nullopt);
  EXPECT_EQ(here.recv(0ms), std::nullopt);
  there.send(3);
  EXPECT_TRUE(here.poll(0ms));
  EXPECT_EQ(here.recv(10ms), 3);
  here.close();
  EXPECT_TRUE(here.closed());
  EXPECT_THROW(here.recv(), Error);
  EXPECT_THROW(here.send(1), Error);
}

TEST_F(PipeTest, LargeMessagesCrossWhole) {
  auto [here, there] = Pipe<std::vector<std::uint32_t>>();
  Process echo([&] {
    here.close();
    for (int i = 0; i < 3; ++i) there.send(there.recv());
  });
  echo.start();
  there.close();
  for (std::size_t size : {std::size_t{16'379}, std::size_t{1} << 20, std::size_t{5} << 20}) {
    std::vector<std::uint32_t> numbers(size);
    for (std::size_t i = 0; i < size; ++i) numbers[i] = static_cast<std::uint32_t>(i * 2654435761u);
    here.send(numbers);
    EXPECT_EQ(here.recv(), numbers) << size;
  }
  ASSERT_TRUE(echo.join(30s));
  EXPECT_EQ(echo.exit_code(), 0);
}

TEST_F(PipeTest, SmallMessagesOfManySendersStayWhole) {
  auto [reader, writer] = Pipe<std::string>(false);
  std::vector<Process> senders;
  for (int s = 0; s < 4; ++s)
    senders.emplace_back([&, s] {
      for (int i = 0; i < 500; ++i) writer.send(std::string(1000 + i, static_cast<char>('a' + s)));
    });
  for (auto& sender : senders) sender.start();
  writer.close();
  std::map<char, int> per_sender;
  for (int received = 0; received <= 2000; ++received) {  // 2000 messages, then the end
    std::string message;
    try {
      message = reader.recv();
    } catch (const EOFError&) {
      break;
    }
    ASSERT_GE(message.size(), 1000u);
    EXPECT_EQ(message.find_first_not_of(message[0]), std::string::npos);
    per_sender[message[0]]++;
  }
  for (auto& sender : senders) ASSERT_TRUE(sender.join(30s));
  EXPECT_EQ(per_sender, (std::map<char, int>{{'a', 500}, {'b', 500}, {'c', 500}, {'d', 500}}));
}

TEST_F(PipeTest, StructuredBindingAndMoves) {
  Pipe<int> pipe;
  Connection<int> left = std::move(pipe.first);
  Connection<int> right = std::move(pipe.second);
  EXPECT_TRUE(pipe.first.closed());
  left.send(1);
  EXPECT_EQ(right.recv(), 1);
  Connection<int> none;
  EXPECT_TRUE(none.closed());
  none = std::move(left);
  none.send(2);
  EXPECT_EQ(right.recv(), 2);
}

}  // namespace
}  // namespace ferry
