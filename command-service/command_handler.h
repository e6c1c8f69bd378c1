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
    // Runs work on another thread that may block (false when it cannot be
    // queued). Without it the *Async methods block like the others.
    std::function<bool(std::function<void()>)> offload;
  };
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

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

  // The same commands without blocking for the commit: each answers through
  // `done`, exactly once. What must read the database before the append (an
  // account not cached, a refusal to confirm on the stored stream, a stored
  // result to look up) still runs on the calling thread, which may block.
  // After the append, `done` runs on the thread that committed it when
  // nothing is left to do, and on options.offload otherwise (a conflict to
  // decide again, a concurrent command_id to look up, a snapshot to save).
  void OpenAccountAsync(std::shared_ptr<const v1::OpenAccountRequest> req,
                        const std::string& correlation_id, absl::Time deadline,
                        Done<v1::CommandResult> done);
  void DepositAsync(std::shared_ptr<const v1::DepositRequest> req,
                    const std::string& correlation_id, absl::Time deadline,
                    Done<v1::CommandResult> done);
  void WithdrawAsync(std::shared_ptr<const v1::WithdrawRequest> req,
                     const std::string& correlation_id, absl::Time deadline,
                     Done<v1::CommandResult> done);
  void CloseAccountAsync(std::shared_ptr<const v1::CloseAccountRequest> req,
                         const std::string& correlation_id, absl::Time deadline,
                         Done<v1::CommandResult> done);
  void TransferAsync(std::shared_ptr<const v1::TransferRequest> req,
                     const std::string& correlation_id, absl::Time deadline,
                     Done<v1::TransferResult> done);

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

  // A validated command: what it records, the accounts it decides on (in
  // the request's order), and the decision.
  struct Plan {
    Command command;
    std::vector<std::string> account_ids;
    std::optional<int64_t> expected_version;
    Decide decide;
  };
  // One decision and its append.
  struct Attempt {
    std::vector<domain::BankAccount> accounts;
    std::vector<eventstore::StreamAppend> ordered;
    std::vector<int64_t> flight;
    std::unique_ptr<eventstore::PendingAppend> pending;
  };
  struct AsyncCall;

  static absl::StatusOr<Plan> PlanOpenAccount(
      std::shared_ptr<const v1::OpenAccountRequest> req,
      const std::string& correlation_id);
  // Deposit, Withdraw, CloseAccount: one account, maybe expected_version.
  template <typename Req>
  static absl::StatusOr<Plan> PlanOnAccount(
      const std::shared_ptr<const Req>& req, const char* type,
      const std::string& correlation_id, Decide decide);
  static absl::StatusOr<Plan> PlanDeposit(
      std::shared_ptr<const v1::DepositRequest> req,
      const std::string& correlation_id);
  static absl::StatusOr<Plan> PlanWithdraw(
      std::shared_ptr<const v1::WithdrawRequest> req,
      const std::string& correlation_id);
  static absl::StatusOr<Plan> PlanCloseAccount(
      std::shared_ptr<const v1::CloseAccountRequest> req,
      const std::string& correlation_id);
  static absl::StatusOr<Plan> PlanTransfer(
      std::shared_ptr<const v1::TransferRequest> req,
      const std::string& correlation_id);
  static v1::CommandResult SingleResult(const Outcome& out);
  static v1::TransferResult TransferResultOf(
      const Outcome& out, const std::vector<std::string>& account_ids);
  static eventstore::CommandRecord RecordOf(const Command& command);
  // The codes of a refusal, which may be of a command that took effect
  // already (its stored result is looked up).
  static bool IsRefusal(absl::StatusCode code);

  absl::StatusOr<v1::CommandResult> ExecuteSingle(absl::StatusOr<Plan> plan,
                                                  absl::Time deadline);
  void ExecuteSingleAsync(absl::StatusOr<Plan> plan, absl::Time deadline,
                          Done<v1::CommandResult> done);
  // Run, then the stored outcome of a repeated command_id (Resolve).
  absl::StatusOr<Outcome> Execute(const Plan& plan, absl::Time deadline);
  void ExecuteAsync(Plan plan, absl::Time deadline, Done<Outcome> done);
  // Execute's answer from Run's: a refusal or a raced append of a recorded
  // command_id is answered with the stored outcome when there is one.
  absl::StatusOr<Outcome> Resolve(const Command& command,
                                  absl::StatusOr<Outcome> out,
                                  absl::Time deadline);
  // Decides and appends, retrying conflicts; no idempotency lookup.
  absl::StatusOr<Outcome> Run(const Plan& plan, absl::Time deadline);
  // Loads the accounts, decides, and queues the append (a.pending), with the
  // accounts' stripes held. An error is the command's answer: nothing was
  // queued. Clears trust_cache when it had to read past the cache. With
  // `would_block`, it never waits (for a stripe, the database or an append
  // in flight): when it would have to, it sets *would_block and returns an
  // error, having changed nothing.
  absl::Status Start(const Plan& plan, const eventstore::CommandRecord& record,
                     const std::string& metadata, bool& trust_cache,
                     absl::Time deadline, Attempt& a,
                     bool* would_block = nullptr);
  // ExecuteAsync once the command may block (on options.offload).
  void StartBlocking(std::shared_ptr<AsyncCall> call);
  // Takes the append's answer: the outcome (command_raced when the command_id
  // was recorded already), or *retry for a conflict to decide again on.
  absl::StatusOr<Outcome> Settle(
      const Plan& plan, Attempt& a,
      absl::StatusOr<std::vector<eventstore::StreamResult>> appended,
      bool* retry);
  // Has Settled called with the queued append's outcome.
  void AnswerOnCommit(const std::shared_ptr<AsyncCall>& call);
  // Settle for ExecuteAsync, on the thread that learned the outcome.
  void Settled(const std::shared_ptr<AsyncCall>& call,
               absl::StatusOr<std::vector<eventstore::StreamResult>> appended);
  bool SnapshotDue(const Attempt& a) const;
  void Snapshot(const Attempt& a, absl::Time deadline);
  std::vector<size_t> StripesOf(
      const std::vector<std::string>& account_ids) const;
  // Appends queued and not yet answered, per account: StartFlight when one
  // is queued (returns its sequence numbers), EndFlight when answered.
  // StartFlight also records, per account, the version and event_id of the
  // last event queued (the tip), which the next command on the account,
  // deciding on that state before it commits, names as the event it follows.
  std::vector<int64_t> StartFlight(
      const std::vector<std::string>& account_ids,
      const std::vector<eventstore::StreamAppend>& appends);
  struct Tip {
    int64_t version = 0;
    std::string event_id;
  };
  // The tip of each account's appends in flight (nullopt: none in flight).
  std::vector<std::optional<Tip>> FlightTips(
      const std::vector<std::string>& account_ids);
  void EndFlight(const std::vector<std::string>& account_ids,
                 const std::vector<int64_t>& seqs);
  bool InFlight(const std::vector<std::string>& account_ids);
  // Waits until no append is in flight on these accounts; false at deadline.
  bool AwaitLanded(const std::vector<std::string>& account_ids,
                   absl::Time deadline);

  // Holds the stripes of a command's accounts, in order (no deadlock).
  class StripeLock {
   public:
    // With try_only, takes them only if none is held by another command
    // (held() tells); it never waits then.
    StripeLock(CommandHandler& h, const std::vector<size_t>& stripes,
               bool try_only = false)
        : h_(h), stripes_(stripes) {
      for (size_t i = 0; i < stripes_.size(); ++i) {
        absl::Mutex& m = h_.stripes_[stripes_[i]];
        if (!try_only) {
          m.Lock();
        } else if (!m.TryLock()) {
          while (i > 0) h_.stripes_[stripes_[--i]].Unlock();
          return;
        }
      }
      held_ = true;
    }
    ~StripeLock() {
      if (!held_) return;
      for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) {
        h_.stripes_[*it].Unlock();
      }
    }
    bool held() const { return held_; }

   private:
    CommandHandler& h_;
    const std::vector<size_t>& stripes_;
    bool held_ = false;
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
    std::optional<Tip> tip;
  };
  absl::Mutex flight_mu_;
  absl::flat_hash_map<std::string, Flight> flights_ ABSL_GUARDED_BY(flight_mu_);
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_
