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

}  // namespace

absl::StatusOr<BatchChanges> ProjectBatch(
    const absl::flat_hash_map<std::string, BalanceRow>& current,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  BatchChanges out;
  // Each touched account: its row and the aggregate folding its events.
  struct Touched {
    BalanceRow row;
    domain::BankAccount account;
  };
  absl::flat_hash_map<std::string, Touched> touched;
  out.history.reserve(events.size());
  for (const eventstore::RecordedEvent& e : events) {
    auto it = touched.find(e.stream_id);
    if (it == touched.end()) {
      auto cur = current.find(e.stream_id);
      BalanceRow row;
      if (cur != current.end()) {
        row = cur->second;
      } else {
        row.account_id = e.stream_id;
      }
      domain::AccountState state = ToState(row);
      it = touched
               .emplace(e.stream_id,
                        Touched{std::move(row),
                                domain::BankAccount(std::move(state))})
               .first;
    }
    BalanceRow& row = it->second.row;
    domain::BankAccount& account = it->second.account;
    if (e.stream_version <= row.version) {
      ++out.duplicates;
      continue;
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
      continue;
    }
    account.Apply(*decoded);
    HistoryRow h;
    h.account_id = e.stream_id;
    h.version = e.stream_version;
    h.occurred_at = e.recorded_at;
    h.position = e.position;
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
  }
  for (auto& [id, t] : touched) {
    BalanceRow& row = t.row;
    const domain::AccountState& s = t.account.state();
    row.owner = s.owner;
    row.currency = s.currency;
    row.status = s.status == domain::AccountStatus::kClosed
                     ? v1::ACCOUNT_STATUS_CLOSED
                     : v1::ACCOUNT_STATUS_OPEN;
    auto cur = current.find(id);
    bool changed = cur == current.end() ? row.version > 0
                                        : cur->second.version != row.version;
    if (changed) out.balances.push_back(std::move(row));
  }
  return out;
}

}  // namespace bank::projector
