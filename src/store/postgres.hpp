// What the PostgreSQL store and election share: making the tables every
// server needs, and checking a database before using it. Private to src/store.
#pragma once

#include <chrono>
#include <string>

#include "store/pg_connection.hpp"

namespace ferry::store::postgres {

// How long a server waits to connect before it says the database cannot be
// reached.
inline constexpr std::chrono::seconds kConnectTimeout{5};

// Makes the leadership row and the schema version table if missing (one
// server at a time); checks that the database is ferry's, or empty, with a
// schema this build can read. Returns the schema version. Throws
// std::runtime_error with a sentence for users.
int prepare(pg::Connection& connection, const std::string& url);

}  // namespace ferry::store::postgres
