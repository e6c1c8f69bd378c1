#include "common/domain/bank_account.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/domain/money.h"
#include "common/util/text.h"

namespace bank::domain {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr size_t kMaxOwnerChars = 200;

}  // namespace

absl::Status ValidateOwner(absl::string_view owner) {
  std::optional<size_t> len = util::Utf8Length(owner);
  if (!len.has_value()) {
    return absl::InvalidArgumentError("owner is not valid UTF-8");
  }
  if (*len == 0 || absl::StripAsciiWhitespace(owner).empty()) {
    return absl::InvalidArgumentError("owner must not be empty");
  }
  if (*len > kMaxOwnerChars) {
    return absl::InvalidArgumentError(
        absl::StrCat("owner is ", *len, " characters long; at most ",
                     kMaxOwnerChars, " are allowed"));
  }
  if (util::HasControlCharacter(owner)) {
    return absl::InvalidArgumentError(
        "owner must not contain control characters");
  }
  return absl::OkStatus();
}

absl::Status ValidateCurrency(absl::string_view currency) {
  bool ok = currency.size() == 3;
  for (char c : currency) ok = ok && c >= 'A' && c <= 'Z';
  if (!ok) {
    return absl::InvalidArgumentError(
        "currency must be three upper-case letters, e.g. \"EUR\"");
  }
  return absl::OkStatus();
}

absl::Status ValidateAmount(int64_t amount) {
  if (amount <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount must be a positive number of minor units, got ", amount));
  }
  return absl::OkStatus();
}

BankAccount::BankAccount(std::string id) { state_.id = std::move(id); }

BankAccount::BankAccount(AccountState state) : state_(std::move(state)) {}

absl::Status BankAccount::RequireOpen() const {
  switch (state_.status) {
    case AccountStatus::kNotOpened:
      return absl::NotFoundError(
          absl::StrCat("account ", state_.id, " does not exist"));
    case AccountStatus::kClosed:
      return absl::FailedPreconditionError(
          absl::StrCat("account ", state_.id, " is closed"));
    case AccountStatus::kOpen:
      break;
  }
  return absl::OkStatus();
}

absl::Status BankAccount::Open(absl::string_view owner,
                               absl::string_view currency,
                               int64_t initial_deposit) {
  if (absl::Status s = ValidateOwner(owner); !s.ok()) return s;
  if (absl::Status s = ValidateCurrency(currency); !s.ok()) return s;
  if (initial_deposit < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_deposit must not be negative, got ", initial_deposit));
  }
  if (state_.status != AccountStatus::kNotOpened) {
    return absl::AlreadyExistsError(
        absl::StrCat("account ", state_.id, " already exists"));
  }
  bank::events::v1::AccountOpened e;
  e.set_account_id(state_.id);
  e.set_owner(std::string(owner));
  e.set_currency(std::string(currency));
  e.set_initial_deposit(initial_deposit);
  Record(std::move(e));
  return absl::OkStatus();
}

absl::Status BankAccount::Deposit(int64_t amount) {
  if (absl::Status s = ValidateAmount(amount); !s.ok()) return s;
  if (absl::Status s = RequireOpen(); !s.ok()) return s;
  if (!CheckedAdd(state_.balance, amount).has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("depositing ", amount,
                     " would overflow the balance of account ", state_.id));
  }
  bank::events::v1::MoneyDeposited e;
  e.set_amount(amount);
  Record(std::move(e));
  return absl::OkStatus();
}

absl::Status BankAccount::Withdraw(int64_t amount) {
  if (absl::Status s = ValidateAmount(amount); !s.ok()) return s;
  if (absl::Status s = RequireOpen(); !s.ok()) return s;
  if (state_.balance < amount) {
    return absl::FailedPreconditionError(
        absl::StrCat("insufficient funds: account ", state_.id, " has ",
                     state_.balance, ", ", amount, " requested"));
  }
  bank::events::v1::MoneyWithdrawn e;
  e.set_amount(amount);
  Record(std::move(e));
  return absl::OkStatus();
}

absl::Status BankAccount::Close() {
  if (absl::Status s = RequireOpen(); !s.ok()) return s;
  if (state_.balance != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "account ", state_.id, " has a balance of ", state_.balance,
        "; only an account with a zero balance can be closed"));
  }
  Record(bank::events::v1::AccountClosed());
  return absl::OkStatus();
}

absl::Status Transfer(BankAccount& from, BankAccount& to,
                      absl::string_view transfer_id, int64_t amount) {
  if (absl::Status s = ValidateAmount(amount); !s.ok()) return s;
  if (from.state_.id == to.state_.id) {
    return absl::InvalidArgumentError(
        "a transfer needs two different accounts");
  }
  if (absl::Status s = from.RequireOpen(); !s.ok()) return s;
  if (absl::Status s = to.RequireOpen(); !s.ok()) return s;
  if (from.state_.currency != to.state_.currency) {
    return absl::FailedPreconditionError(
        absl::StrCat("currency mismatch: account ", from.state_.id, " holds ",
                     from.state_.currency, ", account ", to.state_.id,
                     " holds ", to.state_.currency));
  }
  if (from.state_.balance < amount) {
    return absl::FailedPreconditionError(
        absl::StrCat("insufficient funds: account ", from.state_.id, " has ",
                     from.state_.balance, ", ", amount, " requested"));
  }
  if (!CheckedAdd(to.state_.balance, amount).has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("transferring ", amount,
                     " would overflow the balance of account ", to.state_.id));
  }
  bank::events::v1::TransferSent sent;
  sent.set_transfer_id(std::string(transfer_id));
  sent.set_to_account_id(to.state_.id);
  sent.set_amount(amount);
  bank::events::v1::TransferReceived received;
  received.set_transfer_id(std::string(transfer_id));
  received.set_from_account_id(from.state_.id);
  received.set_amount(amount);
  from.Record(std::move(sent));
  to.Record(std::move(received));
  return absl::OkStatus();
}

void BankAccount::Record(AccountEvent event) {
  // The command checked the rules this event could break, so it applies.
  absl::Status applied = Apply(event);
  (void)applied;
  pending_.push_back(std::move(event));
}

absl::Status BankAccount::Apply(const AccountEvent& event) {
  namespace ev = bank::events::v1;
  auto corrupt = [this](const char* type, int64_t amount, const char* what) {
    return absl::InternalError(
        absl::StrCat("stored ", type, " of ", amount, " on account ", state_.id,
                     " at version ", state_.version + 1, " ", what,
                     ": the stream is corrupt"));
  };
  auto add = [&](const char* type, int64_t amount) -> absl::StatusOr<int64_t> {
    if (amount < 0) return corrupt(type, amount, "is negative");
    std::optional<int64_t> sum = CheckedAdd(state_.balance, amount);
    if (!sum.has_value()) {
      return corrupt(type, amount, "would overflow the balance");
    }
    return *sum;
  };
  auto take = [&](const char* type, int64_t amount) -> absl::StatusOr<int64_t> {
    if (amount < 0) return corrupt(type, amount, "is negative");
    if (amount > state_.balance) {
      return corrupt(type, amount, "would leave a negative balance");
    }
    return state_.balance - amount;
  };
  // The balance after the event, checked before anything changes.
  absl::StatusOr<int64_t> balance = std::visit(
      Overloaded{
          [&](const ev::AccountOpened& e) -> absl::StatusOr<int64_t> {
            if (e.initial_deposit() < 0) {
              return corrupt("AccountOpened", e.initial_deposit(),
                             "is negative");
            }
            return e.initial_deposit();
          },
          [&](const ev::MoneyDeposited& e) {
            return add("MoneyDeposited", e.amount());
          },
          [&](const ev::MoneyWithdrawn& e) {
            return take("MoneyWithdrawn", e.amount());
          },
          [&](const ev::TransferSent& e) {
            return take("TransferSent", e.amount());
          },
          [&](const ev::TransferReceived& e) {
            return add("TransferReceived", e.amount());
          },
          [&](const ev::AccountClosed&) -> absl::StatusOr<int64_t> {
            return state_.balance;
          },
      },
      event);
  if (!balance.ok()) return balance.status();
  state_.balance = *balance;
  if (const auto* opened = std::get_if<ev::AccountOpened>(&event)) {
    state_.owner = opened->owner();
    state_.currency = opened->currency();
    state_.status = AccountStatus::kOpen;
  } else if (std::holds_alternative<ev::AccountClosed>(event)) {
    state_.status = AccountStatus::kClosed;
  }
  ++state_.version;
  return absl::OkStatus();
}

}  // namespace bank::domain
