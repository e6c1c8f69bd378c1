#ifndef BANK_QUERY_SERVICE_READ_MODEL_READER_H_
#define BANK_QUERY_SERVICE_READ_MODEL_READER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "common/db/connection_pool.h"
#include "query-service/resume_token.h"

namespace bank::query {

// Reads the read model (schema: sql/read/) with prepared statements through
// a bounded connection pool. Thread-safe. Every call waits up to
// `outage_wait` (within its deadline) for a database it cannot reach, then
// answers UNAVAILABLE, and gives up at `deadline`.
class ReadModelReader {
 public:
  ReadModelReader(const std::string& uri, int pool_size,
                  absl::Duration outage_wait = absl::ZeroDuration());

  // nullopt when the account is not (yet) in the read model.
  absl::StatusOr<std::optional<v1::AccountBalance>> GetBalance(
      const std::string& account_id, absl::Time deadline);
  // Rows read in one snapshot, with the live checkpoint's events_applied
  // in that snapshot (-1 when unknown).
  struct Balances {
    std::vector<v1::AccountBalance> rows;
    int64_t applied = -1;
  };
  // The balances of the given accounts that are in the read model, in one
  // query (any order).
  absl::StatusOr<Balances> GetBalances(
      const std::vector<std::string>& account_ids, absl::Time deadline);
  // The balance as it stood at `as_of`; nullopt when the account did not
  // exist then (or is unknown).
  absl::StatusOr<std::optional<v1::AccountBalance>> GetBalanceAsOf(
      const std::string& account_id, absl::Time as_of, absl::Time deadline);
  // Up to `limit` accounts with ids after `after_id` ("" for the first), in
  // id order.
  absl::StatusOr<std::vector<v1::AccountBalance>> ListAccounts(
      const std::string& after_id, int limit, absl::Time deadline);
  // Up to `limit` history entries of an account after `after_version`.
  absl::StatusOr<std::vector<v1::HistoryEntry>> GetHistory(
      const std::string& account_id, int64_t after_version, int limit,
      absl::Time deadline);

  // The streams' reads (docs/architecture.md, "Streams").
  //
  // For each of `from` (an account and a version), in one query: up to
  // `limit` of the account's entries after that version, each with the
  // account as it stood right after it; nullopt when the account is not in
  // the read model. The answers are in the order of `from`.
  struct WatchFrom {
    std::string account_id;
    int64_t after_version = 0;
  };
  using WatchRows = std::optional<std::vector<v1::AccountUpdate>>;
  absl::StatusOr<std::vector<WatchRows>> WatchEntries(
      const std::vector<WatchFrom>& from, int limit, absl::Time deadline);
  // Up to `limit` entries after `after` in the order the projector applied
  // them, (transaction_id, position), and no further than the live
  // checkpoint read in the same snapshot; `at` gets the place of each.
  struct StreamPage {
    std::vector<v1::AccountEntry> entries;
    std::vector<EntryPosition> at;
  };
  absl::StatusOr<StreamPage> ReadStream(EntryPosition after, int limit,
                                        absl::Time deadline);
  // What names this bank in resume tokens: the account of the first entry
  // in the stream order, "" while there is none. The same across rebuilds,
  // replicas and restarts.
  absl::StatusOr<std::string> StreamOrigin(absl::Time deadline);
  // Where the live projection's checkpoint stands.
  absl::StatusOr<EntryPosition> LiveCheckpoint(absl::Time deadline);

 private:
  template <typename Fn>
  auto With(absl::Time deadline, const char* what, Fn fn)
      -> decltype(fn(std::declval<db::ConnectionPool::Lease&>()));
  db::ConnectionPool pool_;
  const absl::Duration outage_wait_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_READ_MODEL_READER_H_
