#ifndef BANK_COMMON_DB_RUN_H_
#define BANK_COMMON_DB_RUN_H_

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/db/connection_pool.h"
#include "common/db/pg_status.h"

namespace bank::db {

// The database edge's one try/catch: runs `fn` (which returns a Status or a
// StatusOr) and turns an exception thrown by libpqxx into a status
// (pg_status.h), `what` naming the operation. When the exception says the
// connection broke, `on_lost` runs first, so the caller drops it.
template <typename Fn, typename OnLost>
auto RunMapped(absl::string_view what, OnLost on_lost, Fn fn)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    if (IsConnectionLost(e)) on_lost();
    return StatusFromException(e, what);
  }
}

// How RunPooled runs one call.
struct PooledCall {
  absl::string_view what;  // Names the operation in errors.
  absl::Time deadline;     // The call's own.
  // Waiting for a free connection ends here, or at `deadline` if earlier.
  absl::Time acquire_deadline = absl::InfiniteFuture();
  // The statement_timeout is what is left of `deadline`, at most this.
  absl::Duration max_statement_time = absl::Seconds(10);
  // The call only reads, or writes what may be written twice with the same
  // result: when the connection is found lost it runs once more, on a fresh
  // connection, within the deadline. False for a write whose outcome would
  // then be unknown.
  bool repeatable = false;
  // While no connection can be opened (the database is down or restarting:
  // nothing was sent), the call tries again with backoff for up to this
  // long, within its deadline, before it answers UNAVAILABLE.
  absl::Duration outage_wait = absl::ZeroDuration();
};

// A connection from `pool` for one call: waits for one (and for the
// database, up to `outage_wait`), bounds its statement_timeout, runs
// `fn(lease)` and maps the error; a broken connection is discarded (and a
// repeatable call runs again).
// DEADLINE_EXCEEDED when the deadline has passed before the database was
// asked.
template <typename Fn>
auto RunPooled(ConnectionPool& pool, const PooledCall& call, Fn fn)
    -> decltype(fn(std::declval<ConnectionPool::Lease&>())) {
  std::optional<absl::Time> stop_waiting;  // Set when the database is away.
  absl::Duration backoff = absl::Milliseconds(20);
  for (int attempt = 1;;) {
    const absl::Duration left = call.deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          call.what, ": deadline passed before the database was asked"));
    }
    bool unreachable = false;
    auto lease = pool.Acquire(std::min(call.deadline, call.acquire_deadline),
                              &unreachable);
    if (!lease.ok()) {
      if (!unreachable) return lease.status();
      const absl::Time now = absl::Now();
      if (!stop_waiting.has_value()) {
        stop_waiting = std::min(call.deadline, now + call.outage_wait);
      }
      if (now >= *stop_waiting) return lease.status();
      absl::SleepFor(std::min(backoff, *stop_waiting - now));
      backoff = std::min(2 * backoff, absl::Milliseconds(500));
      continue;
    }
    bool lost = false;
    auto result = RunMapped(
        call.what,
        [&] {
          lease->Discard();
          lost = true;
        },
        [&]() -> decltype(fn(*lease)) {
          lease->SetStatementTimeout(std::min(left, call.max_statement_time));
          return fn(*lease);
        });
    if (!lost || !call.repeatable || attempt == 2) return result;
    ++attempt;
  }
}

// RunPooled for a call that only reads, or writes what may be written twice
// with the same result (repeated once on a fresh connection if its own is
// found lost), each statement at most 10 s.
template <typename Fn>
auto RunRepeatable(ConnectionPool& pool, absl::string_view what,
                   absl::Time deadline, absl::Duration outage_wait, Fn fn)
    -> decltype(fn(std::declval<ConnectionPool::Lease&>())) {
  return RunPooled(pool,
                   {.what = what,
                    .deadline = deadline,
                    .max_statement_time = absl::Seconds(10),
                    .repeatable = true,
                    .outage_wait = outage_wait},
                   std::move(fn));
}

// One connection of a long-lived worker (the projector's reader and
// writers), opened on first use and set up by `on_connect`, dropped when it
// breaks and opened again on the next call. Not thread-safe.
class Session {
 public:
  struct Options {
    std::string uri;
    std::string application_name;
    // Prepares statements, sets session variables; may throw.
    std::function<void(pqxx::connection&)> on_connect;
  };
  explicit Session(Options options) : options_(std::move(options)) {}

  // Runs `fn(connection)` on the open (or newly opened) connection and maps
  // the error; UNAVAILABLE when the database cannot be reached.
  template <typename Fn>
  auto Run(absl::string_view what, Fn fn)
      -> decltype(fn(std::declval<pqxx::connection&>())) {
    if (absl::Status s = Connect(); !s.ok()) return s;
    return RunMapped(
        what, [this] { conn_.reset(); },
        [&]() -> decltype(fn(*conn_)) { return fn(*conn_); });
  }

  void Disconnect() { conn_.reset(); }
  bool connected() const { return conn_ != nullptr && conn_->is_open(); }
  const std::string& uri() const { return options_.uri; }

 private:
  absl::Status Connect();
  const Options options_;
  std::unique_ptr<pqxx::connection> conn_;
};

// Connects to `uri` once and hangs up: OK, or why the database cannot be
// reached (for a process's startup check; `what` names the database).
absl::Status CheckReachable(const std::string& uri, absl::string_view what);

}  // namespace bank::db

#endif  // BANK_COMMON_DB_RUN_H_
