#include "client/server_list.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace ferry::client {
namespace {

TEST(ServerList, TakesOneURLOrACommaSeparatedList) {
  ServerList one("http://a:7077/");
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.current(), "http://a:7077");
  ServerList several(" http://a:7077, http://b:7077 ,http://a:7077/");
  EXPECT_EQ(several.urls(), (std::vector<std::string>{"http://a:7077", "http://b:7077"}));
  EXPECT_EQ(several.describe(), "http://a:7077, http://b:7077");
  EXPECT_THROW(ServerList(""), std::invalid_argument);
  EXPECT_THROW(ServerList("http://a:7077,,http://b:7077"), std::invalid_argument);
}

TEST(ServerList, MovesOnAndFollowsTheLeaderItIsToldOf) {
  ServerList servers("http://a:7077,http://b:7077");
  servers.next();
  EXPECT_EQ(servers.current(), "http://b:7077");
  servers.next();
  EXPECT_EQ(servers.current(), "http://a:7077");
  servers.follow("http://b:7077/");
  EXPECT_EQ(servers.current(), "http://b:7077");
  // A leader not in the list (reached by another name) is learned.
  servers.follow("http://c:7077");
  EXPECT_EQ(servers.current(), "http://c:7077");
  EXPECT_EQ(servers.size(), 3u);
}

TEST(ServerList, KnowsAStandbysRefusal) {
  EXPECT_EQ(not_leader(503, R"({"error":"not_leader","detail":"x","leader":"http://b:7077"})"),
            "http://b:7077");
  EXPECT_EQ(not_leader(503, R"({"error":"not_leader","detail":"x","leader":null})"), "");
  EXPECT_EQ(not_leader(503, R"({"error":"busy","detail":"not_leader"})"), std::nullopt);
  EXPECT_EQ(not_leader(200, R"({"error":"not_leader"})"), std::nullopt);
  EXPECT_EQ(not_leader(503, "not_leader, but not JSON"), std::nullopt);
}

}  // namespace
}  // namespace ferry::client
