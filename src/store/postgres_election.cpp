// Election on PostgreSQL: the leadership row, its lease by the database's
// clock, and a session advisory lock per epoch that tells a standby at once
// when the leader's session is gone. docs/store.md, "Leadership".
#include <fmt/format.h>

#include <set>

#include "store/election.hpp"
#include "store/postgres.hpp"
#include "store/postgres_schema.hpp"

namespace ferry::store {
namespace {

namespace sql = postgres;

class PostgresElection final : public Election {
 public:
  // Connects when first used: a standby may start before its database.
  PostgresElection(std::string url, std::chrono::milliseconds lease)
      : url_(std::move(url)), lease_(lease) {}

  View observe() override {
    pg::Result row = run(
        "SELECT epoch, holder, url, expires_at <= clock_timestamp() FROM leadership WHERE id = 1");
    if (row.rows() != 1) throw std::runtime_error("the leadership row is missing");
    return {static_cast<std::uint64_t>(row.integer(0, 0)), std::string(row.text(0, 1)),
            std::string(row.text(0, 2)), row.boolean(0, 3)};
  }

  std::optional<std::uint64_t> try_lead(const std::string& holder,
                                        const std::string& url) override {
    View seen = observe();
    if (seen.epoch > 0 && !seen.expired) {
      // Its lease runs, but is its session alive? The leader of an epoch
      // holds that epoch's lock from before the row named it.
      if (!try_lock(seen.epoch)) return std::nullopt;
      unlock(seen.epoch);
    }
    std::uint64_t next = seen.epoch + 1;
    if (!try_lock(next)) return std::nullopt;  // another server is taking over
    // FOR UPDATE waits for every transaction fenced by the old epoch (they
    // hold the row FOR KEY SHARE) to end; those that come later find the
    // new epoch and write nothing.
    pg::Result taken =
        run("WITH current AS (SELECT id FROM leadership WHERE id = 1 AND epoch = $1 FOR UPDATE) "
            "UPDATE leadership SET epoch = $2, holder = $3, url = $4, "
            "expires_at = clock_timestamp() + $5 * interval '1 millisecond' "
            "FROM current WHERE leadership.id = current.id RETURNING leadership.epoch",
            pg::Params()
                .add(static_cast<std::int64_t>(seen.epoch))
                .add(static_cast<std::int64_t>(next))
                .add(holder)
                .add(url)
                .add(static_cast<std::int64_t>(lease_.count())));
    if (taken.rows() != 1) {
      unlock(next);
      return std::nullopt;
    }
    return next;
  }

  bool renew(std::uint64_t epoch) override {
    pg::Result renewed =
        run("UPDATE leadership SET expires_at = clock_timestamp() + $2 * interval '1 millisecond' "
            "WHERE id = 1 AND epoch = $1",
            pg::Params()
                .add(static_cast<std::int64_t>(epoch))
                .add(static_cast<std::int64_t>(lease_.count())));
    if (renewed.affected() != 1) return false;
    // A new session (the last one broke) holds the epoch's lock again, so a
    // standby keeps waiting for the lease rather than take over.
    if (!locked_.contains(epoch)) try_lock(epoch);
    return true;
  }

  void resign(std::uint64_t epoch) override {
    run("UPDATE leadership SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1",
        pg::Params().add(static_cast<std::int64_t>(epoch)));
    if (locked_.contains(epoch)) unlock(epoch);
  }

  std::chrono::milliseconds lease() const override { return lease_; }

 private:
  static std::int64_t lock_key(std::uint64_t epoch) {
    return sql::kLeaderLocks + static_cast<std::int64_t>(epoch % (1u << 30));
  }
  bool try_lock(std::uint64_t epoch) {
    if (locked_.contains(epoch)) return true;
    bool got =
        run(fmt::format("SELECT pg_try_advisory_lock({}, {})", sql::kLockSpace, lock_key(epoch)))
            .boolean(0, 0);
    if (got) locked_.insert(epoch);
    return got;
  }
  void unlock(std::uint64_t epoch) {
    run(fmt::format("SELECT pg_advisory_unlock({}, {})", sql::kLockSpace, lock_key(epoch)));
    locked_.erase(epoch);
  }

  pg::Connection& connection() {
    if (!connection_ || connection_->broken()) {
      connection_.reset();
      locked_.clear();  // session locks went with the session
      // A takeover waits at most a fraction of a lease for a row lock: one
      // held by a paused server's transaction is ended by the database after
      // a lease (the writer's idle_in_transaction_session_timeout), and the
      // next attempt goes through.
      connection_.emplace(url_,
                          std::min<std::chrono::milliseconds>(postgres::kConnectTimeout, wait()),
                          fmt::format("SET application_name = 'ferry server (election)'; "
                                      "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
                                      lease_.count() / 6 + 1, wait().count()));
      try {
        postgres::prepare(*connection_, url_);  // the leadership row, on a new database
      } catch (...) {
        connection_.reset();
        throw;
      }
    }
    return *connection_;
  }

  std::chrono::milliseconds wait() const {
    return std::max<std::chrono::milliseconds>(lease_ / 2, std::chrono::milliseconds(500));
  }

  pg::Result run(const std::string& statement, const pg::Params& params = {}) {
    try {
      return connection().run(statement, params, pg::Clock::now() + wait());
    } catch (const std::runtime_error& error) {
      throw std::runtime_error(fmt::format("election on {}: {}", pg::redacted(url_), error.what()));
    }
  }

  std::string url_;
  std::chrono::milliseconds lease_;
  std::optional<pg::Connection> connection_;
  std::set<std::uint64_t> locked_;  // epochs whose lock this session holds
};

}  // namespace

std::unique_ptr<Election> open_postgres_election(const std::string& url,
                                                 std::chrono::milliseconds lease) {
  return std::make_unique<PostgresElection>(url, lease);
}

}  // namespace ferry::store
