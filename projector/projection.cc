#include "projector/projection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "bank/v1/bank.pb.h"
#include "common/domain/bank_account.h"
#include "common/domain/event_codec.h"

namespace bank::projector {
namespace {

namespace ev = bank::events::v1;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

domain::AccountState ToState(const BalanceRow& row) {
  domain::AccountState s;
  s.id = row.account_id;
  s.owner = row.owner;
  s.currency = row.currency;
  s.balance = row.balance;
  s.version = row.version;
  s.status = row.status == v1::ACCOUNT_STATUS_CLOSED
                 ? domain::AccountStatus::kClosed
             : row.version > 0 ? domain::AccountStatus::kOpen
                               : domain::AccountStatus::kNotOpened;
  return s;
}

// Projects one event onto its account: a history row, or nothing for a
// duplicate, or poison (FAILED_PRECONDITION unless skip_poison).
absl::Status ProjectEvent(const eventstore::RecordedEvent& e, AccountFold& fold,
                          bool skip_poison, BatchChanges& out) {
  BalanceRow& row = fold.row;
  domain::BankAccount& account = fold.account;
  if (e.stream_version <= row.version) {
    ++out.duplicates;
    return absl::OkStatus();
  }
  std::string error;
  absl::StatusOr<domain::AccountEvent> decoded =
      domain::DecodeEvent(e.type, e.schema_version, e.data);
  if (!decoded.ok()) {
    error = std::string(decoded.status().message());
  } else if (e.stream_version != row.version + 1) {
    error = absl::StrCat("stream gap: account is at version ", row.version,
                         ", event has version ", e.stream_version);
  } else if (row.version == 0 &&
             !std::holds_alternative<ev::AccountOpened>(*decoded)) {
    error = "the first event of a stream must be AccountOpened";
  } else if (row.version > 0 &&
             std::holds_alternative<ev::AccountOpened>(*decoded)) {
    error = "AccountOpened on an account that is open already";
  } else if (absl::Status s = account.Apply(*decoded); !s.ok()) {
    error = std::string(s.message());
  }
  if (!error.empty()) {
    if (!skip_poison) {
      return absl::FailedPreconditionError(absl::StrCat(
          "event at position ", e.position, " (", e.type, " v",
          e.schema_version, " of account ", e.stream_id,
          ") cannot be projected: ", error,
          ". Fix the event or restart the projector with --skip-poison to "
          "record it and go on"));
    }
    out.poison.push_back({e.position, e.stream_id, e.type, error});
    return absl::OkStatus();
  }
  HistoryRow h;
  h.account_id = e.stream_id;
  h.version = e.stream_version;
  h.occurred_at = e.recorded_at;
  h.position = e.position;
  h.transaction_id = e.transaction_id;
  std::visit(Overloaded{
                 [&](const ev::AccountOpened& o) {
                   h.kind = v1::ENTRY_KIND_OPENED;
                   h.amount = o.initial_deposit();
                   row.opened_at = e.recorded_at;
                 },
                 [&](const ev::MoneyDeposited& d) {
                   h.kind = v1::ENTRY_KIND_DEPOSITED;
                   h.amount = d.amount();
                 },
                 [&](const ev::MoneyWithdrawn& w) {
                   h.kind = v1::ENTRY_KIND_WITHDRAWN;
                   h.amount = w.amount();
                 },
                 [&](const ev::TransferSent& t) {
                   h.kind = v1::ENTRY_KIND_TRANSFER_OUT;
                   h.amount = t.amount();
                   h.counterparty_account_id = t.to_account_id();
                 },
                 [&](const ev::TransferReceived& t) {
                   h.kind = v1::ENTRY_KIND_TRANSFER_IN;
                   h.amount = t.amount();
                   h.counterparty_account_id = t.from_account_id();
                 },
                 [&](const ev::AccountClosed&) {
                   h.kind = v1::ENTRY_KIND_CLOSED;
                   h.amount = 0;
                 },
             },
             *decoded);
  const domain::AccountState& s = account.state();
  h.balance_after = s.balance;
  row.balance = s.balance;
  row.version = s.version;
  row.updated_at = e.recorded_at;
  row.last_position = e.position;
  out.history.push_back(std::move(h));
  ++out.applied;
  return absl::OkStatus();
}

// Streams come in runs (one transaction's events of an account): the last
// entry is remembered to spare a hash lookup per event. Valid until the next
// insertion into the map, which replaces it.
class LastAccount {
 public:
  AccountFold* Find(const std::string& id) const {
    return id_ != nullptr && *id_ == id ? fold_ : nullptr;
  }
  void Remember(const std::string& id, AccountFold& fold) {
    id_ = &id;
    fold_ = &fold;
  }

 private:
  const std::string* id_ = nullptr;
  AccountFold* fold_ = nullptr;
};

}  // namespace

AccountFold::AccountFold(BalanceRow r)
    : row(std::move(r)), account(ToState(row)) {}

BalanceRow AccountFold::FinalRow() const {
  BalanceRow out = row;
  const domain::AccountState& s = account.state();
  out.owner = s.owner;
  out.currency = s.currency;
  out.status = s.status == domain::AccountStatus::kClosed
                   ? v1::ACCOUNT_STATUS_CLOSED
                   : v1::ACCOUNT_STATUS_OPEN;
  return out;
}

absl::StatusOr<BatchChanges> ProjectBatch(
    const absl::flat_hash_map<std::string, BalanceRow>& current,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  BatchChanges out;
  absl::flat_hash_map<std::string, AccountFold> touched;
  out.history.reserve(events.size());
  LastAccount last;
  for (const eventstore::RecordedEvent& e : events) {
    AccountFold* fold = last.Find(e.stream_id);
    if (fold == nullptr) {
      auto it = touched.find(e.stream_id);
      if (it == touched.end()) {
        auto cur = current.find(e.stream_id);
        BalanceRow row;
        if (cur != current.end()) {
          row = cur->second;
        } else {
          row.account_id = e.stream_id;
        }
        it = touched.emplace(e.stream_id, AccountFold(std::move(row))).first;
      }
      fold = &it->second;
      last.Remember(it->first, *fold);
    }
    if (absl::Status s = ProjectEvent(e, *fold, skip_poison, out); !s.ok()) {
      return s;
    }
  }
  for (auto& [id, fold] : touched) {
    auto cur = current.find(id);
    bool changed = cur == current.end()
                       ? fold.row.version > 0
                       : cur->second.version != fold.row.version;
    if (changed) out.balances.push_back(fold.FinalRow());
  }
  return out;
}

absl::Status FoldBatch(absl::flat_hash_map<std::string, AccountFold>& accounts,
                       const std::vector<eventstore::RecordedEvent>& events,
                       bool skip_poison, BatchChanges* out) {
  out->history.reserve(out->history.size() + events.size());
  LastAccount last;
  for (const eventstore::RecordedEvent& e : events) {
    AccountFold* fold = last.Find(e.stream_id);
    if (fold == nullptr) {
      auto it = accounts.find(e.stream_id);
      if (it == accounts.end()) {
        BalanceRow row;
        row.account_id = e.stream_id;
        it = accounts.emplace(e.stream_id, AccountFold(std::move(row))).first;
      }
      fold = &it->second;
      last.Remember(it->first, *fold);
    }
    if (absl::Status s = ProjectEvent(e, *fold, skip_poison, *out); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace bank::projector
