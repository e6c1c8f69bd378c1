#ifndef BANK_COMMON_DOMAIN_BANK_ACCOUNT_H_
#define BANK_COMMON_DOMAIN_BANK_ACCOUNT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/domain/events.h"

namespace bank::domain {

enum class AccountStatus { kNotOpened, kOpen, kClosed };

// The state of one account: a pure fold over its events.
struct AccountState {
  std::string id;
  std::string owner;
  std::string currency;
  int64_t balance = 0;
  int64_t version = 0;  // Number of events applied; 0 = no stream yet.
  AccountStatus status = AccountStatus::kNotOpened;

  friend bool operator==(const AccountState& a, const AccountState& b) {
    return a.id == b.id && a.owner == b.owner && a.currency == b.currency &&
           a.balance == b.balance && a.version == b.version &&
           a.status == b.status;
  }
};

// The account aggregate. Commands (Open, Deposit, ...) check the business
// rules against the current state and, when they hold, record new events;
// only Apply changes the state, so replaying a stream rebuilds exactly the
// state that recorded it. Pure: no I/O, no clock. Not thread-safe.
//
// Errors: INVALID_ARGUMENT for a malformed amount, owner or currency;
// NOT_FOUND when the account was never opened; ALREADY_EXISTS when opening an
// opened account; FAILED_PRECONDITION for insufficient funds, a closed
// account, closing with a non-zero balance, or an overflowing balance. A
// command that fails records nothing.
class BankAccount {
 public:
  explicit BankAccount(std::string id);
  // Resumes from a state (a snapshot or a cached fold).
  explicit BankAccount(AccountState state);

  const AccountState& state() const { return state_; }
  // The version the stream had before the pending events.
  int64_t committed_version() const {
    return state_.version - static_cast<int64_t>(pending_.size());
  }
  const std::vector<AccountEvent>& pending() const { return pending_; }
  void ClearPending() { pending_.clear(); }

  absl::Status Open(absl::string_view owner, absl::string_view currency,
                    int64_t initial_deposit);
  absl::Status Deposit(int64_t amount);
  absl::Status Withdraw(int64_t amount);
  absl::Status Close();

  // Folds one stored event into the state; the version advances by one.
  // Stored events are facts, so the business rules are not checked again,
  // but one that no command can have recorded (a negative amount, a balance
  // overflowing or going below zero: a corrupt or hand-inserted row) is
  // refused with INTERNAL naming the account and version, and the state is
  // left as it was.
  [[nodiscard]] absl::Status Apply(const AccountEvent& event);

 private:
  friend absl::Status Transfer(BankAccount& from, BankAccount& to,
                               absl::string_view transfer_id, int64_t amount);
  void Record(AccountEvent event);
  absl::Status RequireOpen() const;

  AccountState state_;
  std::vector<AccountEvent> pending_;
};

// Moves amount from `from` to `to`, recording TransferSent on `from` and
// TransferReceived on `to`, or nothing on either when any rule fails: both
// open, different accounts, same currency, funds available, no overflow.
absl::Status Transfer(BankAccount& from, BankAccount& to,
                      absl::string_view transfer_id, int64_t amount);

// Field rules of the contract, shared with request validation.
absl::Status ValidateOwner(absl::string_view owner);
absl::Status ValidateCurrency(absl::string_view currency);
absl::Status ValidateAmount(int64_t amount);

}  // namespace bank::domain

#endif  // BANK_COMMON_DOMAIN_BANK_ACCOUNT_H_
