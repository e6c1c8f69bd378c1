#ifndef BANK_COMMON_DB_CONNECTION_POOL_H_
#define BANK_COMMON_DB_CONNECTION_POOL_H_

#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bank::db {

// A bounded pool of libpqxx connections to one database. Connections are
// opened lazily up to `size`; a caller that finds none free waits until its
// deadline and then gets UNAVAILABLE. A connection found broken is discarded
// and replaced on a later Acquire, so the pool recovers by itself when the
// database comes back. Thread-safe.
// What to set statement_timeout to on a connection whose current setting is
// `current` (zero: not set yet) when a statement must end within `wanted`,
// or nullopt to keep `current`. A deadline-derived timeout differs by a few
// milliseconds on every call, and each change costs a round trip, so the
// current setting is kept while it lies within [wanted, 1.25 * wanted]; a
// new setting gets 10 % headroom above `wanted`, so the calls that follow
// keep it. A statement may thus run up to a quarter (and a millisecond)
// longer than asked, never shorter. Whole milliseconds, at least 1 (0 would
// mean "no timeout").
std::optional<absl::Duration> StatementTimeoutToSet(absl::Duration current,
                                                    absl::Duration wanted);

class ConnectionPool {
 public:
  struct Options {
    std::string uri;
    int size = 8;
    // Applied to each new connection (prepare statements, SET ...). May throw
    // libpqxx exceptions; the connection is then discarded.
    std::function<void(pqxx::connection&)> on_connect;
    // The application_name the server sees, before each connection's own
    // suffix (Lease::application_name).
    std::string application_name = "bank";
  };

  struct Slot {
    std::unique_ptr<pqxx::connection> conn;
    absl::Duration statement_timeout = absl::ZeroDuration();  // 0: unset
    std::string application_name;
  };

  // One connection, returned to the pool when destroyed. Not thread-safe.
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(other.pool_),
          slot_(std::move(other.slot_)),
          discard_(other.discard_) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() const { return *slot_->conn; }
    pqxx::connection* operator->() const { return slot_->conn.get(); }
    // What the server sees as this connection's application_name: the
    // pool's, then '/' and 12 random hex digits. With the backend's pid it
    // names the server process in pg_stat_activity, even after a restart.
    const std::string& application_name() const {
      return slot_->application_name;
    }
    // Drops the connection instead of returning it (after it broke).
    void Discard() { discard_ = true; }
    // Bounds the session's statement_timeout to `timeout`, as
    // StatementTimeoutToSet() decides: a round trip only when the setting
    // must change. May throw libpqxx exceptions. REQUIRES: no transaction
    // open on the connection.
    void SetStatementTimeout(absl::Duration timeout);

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, std::unique_ptr<Slot> slot)
        : pool_(pool), slot_(std::move(slot)) {}
    ConnectionPool* pool_;
    std::unique_ptr<Slot> slot_;
    bool discard_ = false;
  };

  explicit ConnectionPool(Options options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // UNAVAILABLE when no connection frees up (or can be opened) by `deadline`;
  // `unreachable`, when given, tells whether it was because a new connection
  // could not be opened (nothing was sent to the database).
  absl::StatusOr<Lease> Acquire(absl::Time deadline,
                                bool* unreachable = nullptr);

  // Connections handed out now, and callers waiting for one.
  int in_use() const;
  int waiting() const;
  int size() const { return options_.size; }

 private:
  void Release(std::unique_ptr<Slot> slot, bool discard);

  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + in use + being opened
  int in_use_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bank::db

#endif  // BANK_COMMON_DB_CONNECTION_POOL_H_
