// ferry::store::Election — which of the servers sharing a database leads.
//
// The leadership is one row of the database (docs/store.md, "Leadership"):
// an epoch, the leader's name and URL, and when its lease expires — by the
// database's clock, the one clock every server shares. The leader renews its
// lease well before it expires. Another server takes over once it expired,
// or at once when the leader's database session is gone (a server killed
// ends its sessions with it; the session's advisory lock says so).
//
// Taking over increments the epoch. The store fences every write by it
// (Store::lead): once a takeover committed, no transaction of an earlier
// epoch can commit, however long its server was paused or cut off. Clocks
// and timeouts decide only how soon a server steps aside, never whether two
// can write.
//
// Every call waits at most about half a lease for the database, and throws
// std::runtime_error when the database cannot be reached in that time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace ferry::store {

class Election {
 public:
  struct View {
    std::uint64_t epoch = 0;  // 0: nobody ever led
    std::string holder;       // the leader's name
    std::string url;          // where clients reach it
    bool expired = true;      // its lease ran out: nobody leads now
  };

  virtual ~Election() = default;

  // The leadership as the database has it now.
  virtual View observe() = 0;

  // Takes over as `holder`, reached at `url`, when nobody leads (no leader
  // yet, its lease expired, or its session is gone): the new epoch. Nothing
  // while another leads, or when another server took over first.
  virtual std::optional<std::uint64_t> try_lead(const std::string& holder,
                                                const std::string& url) = 0;

  // Extends the lease of `epoch` by a lease from now: false when another
  // server took over. Throws when the database did not answer (the lease
  // may still be ours until it expires).
  virtual bool renew(std::uint64_t epoch) = 0;

  // Gives up `epoch` at once, so that a standby takes over without waiting
  // for the lease to run out.
  virtual void resign(std::uint64_t epoch) = 0;

  virtual std::chrono::milliseconds lease() const = 0;
};

// An election on the PostgreSQL database at `url` (Election's leadership row,
// made if missing), with leases of `lease`.
std::unique_ptr<Election> open_postgres_election(const std::string& url,
                                                 std::chrono::milliseconds lease);

}  // namespace ferry::store
