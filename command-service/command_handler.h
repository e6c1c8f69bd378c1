#ifndef BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_
#define BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "command-service/account_cache.h"
#include "command-service/request_validation.h"
#include "common/domain/bank_account.h"
#include "common/eventstore/event_store.h"
#include "common/metrics/metrics.h"

namespace bank::command {

// Executes the commands of bank.v1.CommandService: validates the request,
// answers a repeated command_id from its stored result, loads the accounts
// (cache, snapshot, newer events), lets the aggregate decide, and appends the
// events with optimistic concurrency. Commands on the same account are
// serialized inside the process so they do not fight; conflicts with other
// instances are retried (reload, decide, append) a bounded number of times
// with jitter unless the client gave an expected_version. Thread-safe.
class CommandHandler {
 public:
  struct Options {
    int max_attempts = 10;
    int snapshot_every = 100;  // 0 disables snapshots.
    size_t cache_capacity = 100000;
    std::string instance_id = "command-service";
    // Where conflicts, retries and replays are counted (a private registry
    // when null).
    metrics::Registry* metrics = nullptr;
  };

  CommandHandler(eventstore::EventStore& store, Options options);

  // Each returns the contract's status codes (see proto/bank/v1/bank.proto and
  // the README). correlation_id is recorded in the events' metadata.
  absl::StatusOr<v1::CommandResult> OpenAccount(
      const v1::OpenAccountRequest& req, const std::string& correlation_id,
      absl::Time deadline);
  absl::StatusOr<v1::CommandResult> Deposit(const v1::DepositRequest& req,
                                            const std::string& correlation_id,
                                            absl::Time deadline);
  absl::StatusOr<v1::CommandResult> Withdraw(const v1::WithdrawRequest& req,
                                             const std::string& correlation_id,
                                             absl::Time deadline);
  absl::StatusOr<v1::CommandResult> CloseAccount(
      const v1::CloseAccountRequest& req, const std::string& correlation_id,
      absl::Time deadline);
  absl::StatusOr<v1::TransferResult> Transfer(const v1::TransferRequest& req,
                                              const std::string& correlation_id,
                                              absl::Time deadline);

  AccountCache& cache() { return cache_; }

 private:
  struct Command {
    std::string command_id;  // Empty: not deduplicated.
    std::string request_type;
    std::string request;  // Deterministic encoding.
    std::string correlation_id;
  };
  // What Execute did: the per-account results in the order of the ids, or
  // (replay) the stored results of an earlier command with the same id.
  struct Outcome {
    std::vector<eventstore::StreamResult> results;
    bool replayed = false;
    // The append found command_id recorded by a concurrent request.
    bool command_raced = false;
  };
  using Decide =
      std::function<absl::Status(std::vector<domain::BankAccount>& accounts)>;

  absl::StatusOr<Outcome> Execute(const Command& command,
                                  const std::vector<std::string>& account_ids,
                                  std::optional<int64_t> expected_version,
                                  const Decide& decide, absl::Time deadline);
  // Decides and appends, retrying conflicts; no idempotency lookup.
  absl::StatusOr<Outcome> Run(const Command& command,
                              const std::vector<std::string>& account_ids,
                              std::optional<int64_t> expected_version,
                              const Decide& decide, absl::Time deadline);
  std::vector<size_t> StripesOf(
      const std::vector<std::string>& account_ids) const;
  // Appends queued and not yet answered, per account: StartFlight when one
  // is queued (returns its sequence numbers), EndFlight when answered.
  std::vector<int64_t> StartFlight(const std::vector<std::string>& account_ids);
  void EndFlight(const std::vector<std::string>& account_ids,
                 const std::vector<int64_t>& seqs);
  bool InFlight(const std::vector<std::string>& account_ids);
  // Waits until no append is in flight on these accounts; false at deadline.
  bool AwaitLanded(const std::vector<std::string>& account_ids,
                   absl::Time deadline);

  // Holds the stripes of a command's accounts, in order (no deadlock).
  class StripeLock {
   public:
    StripeLock(CommandHandler& h, const std::vector<size_t>& stripes)
        : h_(h), stripes_(stripes) {
      for (size_t s : stripes_) h_.stripes_[s].Lock();
    }
    ~StripeLock() {
      for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) {
        h_.stripes_[*it].Unlock();
      }
    }

   private:
    CommandHandler& h_;
    const std::vector<size_t>& stripes_;
  };
  // The stored outcome of command.command_id, if any; INVALID_ARGUMENT when
  // the id was used for a different request.
  absl::StatusOr<std::optional<Outcome>> FindReplay(const Command& command,
                                                    absl::Time deadline);
  // The account's current state. With trust_cache, a cached state is
  // returned as is; otherwise the newer events are read after it.
  absl::StatusOr<domain::BankAccount> Load(const std::string& id,
                                           bool trust_cache, bool* from_cache,
                                           absl::Time deadline);
  void MaybeSnapshot(const domain::AccountState& state, int64_t before,
                     absl::Time deadline);
  std::string Metadata(const Command& command) const;

  eventstore::EventStore& store_;
  const Options options_;
  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Counter* conflicts_ = nullptr;
  metrics::Counter* retries_ = nullptr;
  metrics::Counter* replays_ = nullptr;
  AccountCache cache_;
  // Per-account serialization: an account id hashes to one stripe.
  static constexpr size_t kStripes = 1024;
  std::array<absl::Mutex, kStripes> stripes_;
  struct Flight {
    int64_t started = 0;
    int64_t settled = 0;
  };
  absl::Mutex flight_mu_;
  absl::flat_hash_map<std::string, Flight> flights_ ABSL_GUARDED_BY(flight_mu_);
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_
