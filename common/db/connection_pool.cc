#include "common/db/connection_pool.h"

#include <poll.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/db/pg_status.h"
#include "common/util/uuid.h"

namespace bank::db {

ConnectionPool::Lease::~Lease() {
  if (slot_ != nullptr) pool_->Release(std::move(slot_), discard_);
}

std::optional<absl::Duration> StatementTimeoutToSet(absl::Duration current,
                                                    absl::Duration wanted) {
  const int64_t want_ms = std::max<int64_t>(
      1, absl::ToInt64Milliseconds(absl::Ceil(wanted, absl::Milliseconds(1))));
  const int64_t have_ms = absl::ToInt64Milliseconds(current);
  // The millisecond of slack keeps a rounded-up setting of a very short
  // timeout from being replaced on every call.
  if (have_ms >= want_ms && have_ms * 4 <= want_ms * 5 + 4) return std::nullopt;
  return absl::Milliseconds(want_ms + (want_ms + 9) / 10);
}

void ConnectionPool::Lease::SetStatementTimeout(absl::Duration timeout) {
  std::optional<absl::Duration> set =
      StatementTimeoutToSet(slot_->statement_timeout, timeout);
  if (!set.has_value()) return;
  slot_->conn->set_variable("statement_timeout",
                            std::to_string(absl::ToInt64Milliseconds(*set)));
  slot_->statement_timeout = *set;
}

ConnectionPool::ConnectionPool(Options options)
    : options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() = default;

namespace {

// An idle connection has nothing to read unless the server spoke first: on
// a shutdown or a terminated backend it sends a FATAL and closes, so a
// connection with input waiting (or a hang-up, or an error) sat broken in
// the pool. One poll(2), no round trip.
bool BrokeWhileIdle(const pqxx::connection& conn) {
  const int fd = conn.sock();
  if (fd < 0) return true;
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) != 0;
}

}  // namespace

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(
    absl::Time deadline, bool* unreachable) {
  if (unreachable != nullptr) *unreachable = false;
  for (;;) {
    std::unique_ptr<Slot> idle;
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      auto can_proceed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < options_.size;
      };
      mu_.AwaitWithDeadline(absl::Condition(&can_proceed), deadline);
      --waiting_;
      if (!idle_.empty()) {
        idle = std::move(idle_.back());
        idle_.pop_back();
        ++in_use_;
      } else if (open_ >= options_.size) {
        return absl::UnavailableError(absl::StrCat(
            "no database connection free within the deadline (pool of ",
            options_.size, ")"));
      } else {
        ++open_;  // Reserve a place; open the connection outside the lock.
        ++in_use_;
        break;
      }
    }
    if (!BrokeWhileIdle(*idle->conn)) return Lease(this, std::move(idle));
    Release(std::move(idle), /*discard=*/true);  // And take another.
  }
  auto slot = std::make_unique<Slot>();
  try {
    std::string conninfo = options_.uri;
    slot->conn = std::make_unique<pqxx::connection>(conninfo);
    // Unique to the connection: pg_stat_activity tells it from a process
    // of the same pid after a restart (see ConnectionPool::Lease).
    slot->application_name = absl::StrCat(options_.application_name, "/",
                                          util::NewUuid().substr(0, 12));
    slot->conn->set_variable("application_name",
                             "'" + slot->application_name + "'");
    if (options_.on_connect) options_.on_connect(*slot->conn);
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    --in_use_;
    if (unreachable != nullptr) *unreachable = true;
    // Not the URI: this status may reach a client, who need not learn
    // where the database runs (the process logs its URI at startup).
    return StatusFromException(e, "connecting to the database");
  }
  return Lease(this, std::move(slot));
}

void ConnectionPool::Release(std::unique_ptr<Slot> slot, bool discard) {
  if (!discard && !slot->conn->is_open()) discard = true;
  absl::MutexLock lock(&mu_);
  --in_use_;
  if (discard) {
    --open_;
    // Destroying the connection may block briefly; acceptable under the lock
    // since it is rare (only after a failure).
    slot.reset();
  } else {
    idle_.push_back(std::move(slot));
  }
}

int ConnectionPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

int ConnectionPool::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

}  // namespace bank::db
