#include "tests/support/oracle.h"

#include <map>
#include <pqxx/pqxx>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/domain/bank_account.h"
#include "common/domain/event_codec.h"

namespace bank::testing {

std::vector<std::string> CompareReadModel(const std::string& events_uri,
                                          const std::string& read_uri,
                                          long* events_seen) {
  std::vector<std::string> diffs;
  std::map<std::string, domain::BankAccount> accounts;
  // (account, version) -> balance after, and the event's place in the
  // event store's order: (transaction_id, position).
  struct Entry {
    int64_t balance_after, transaction_id, position;
  };
  std::map<std::pair<std::string, int64_t>, Entry> history;
  std::set<std::string> poisoned;
  long n = 0;
  {
    pqxx::connection c(events_uri);
    pqxx::work tx(c);
    pqxx::result r = tx.exec(
        "SELECT stream_id::text, stream_version, event_type, schema_version, "
        "data::text, transaction_id::text::bigint, position FROM events "
        "ORDER BY stream_id, stream_version");
    for (const auto& row : r) {
      ++n;
      std::string id = row[0].as<std::string>();
      const int64_t version = row[1].as<int64_t>();
      // Poison is not part of the model, nor is anything after it in its
      // stream (the projector records those as poison too).
      if (poisoned.contains(id)) continue;
      auto decoded = domain::DecodeEvent(
          row[2].as<std::string>(), row[3].as<int>(), row[4].as<std::string>());
      if (!decoded.ok()) {
        poisoned.insert(id);
        continue;
      }
      auto it = accounts.try_emplace(id, domain::BankAccount(id)).first;
      if (version != it->second.state().version + 1) {
        diffs.push_back("stream " + id + " skips from version " +
                        std::to_string(it->second.state().version) + " to " +
                        std::to_string(version));
        poisoned.insert(id);
        continue;
      }
      if (!it->second.Apply(*decoded).ok()) {
        poisoned.insert(id);
        continue;
      }
      history[{id, version}] = {it->second.state().balance,
                                row[5].as<int64_t>(), row[6].as<int64_t>()};
    }
  }
  if (events_seen) *events_seen = n;
  pqxx::connection c(read_uri);
  pqxx::work tx(c);
  pqxx::result balances = tx.exec(
      "SELECT account_id::text, balance, version, status FROM "
      "account_balances");
  std::map<std::string, std::tuple<int64_t, int64_t, int>> model;
  for (const auto& row : balances) {
    model[row[0].as<std::string>()] = {row[1].as<int64_t>(),
                                       row[2].as<int64_t>(), row[3].as<int>()};
  }
  for (const auto& [id, account] : accounts) {
    const auto& s = account.state();
    auto it = model.find(id);
    if (it == model.end()) {
      diffs.push_back(
          absl::StrCat("account ", id, " missing from the read model"));
      continue;
    }
    auto [balance, version, status] = it->second;
    int want_status = s.status == domain::AccountStatus::kClosed ? 2 : 1;
    if (balance != s.balance || version != s.version || status != want_status) {
      diffs.push_back(absl::StrCat("account ", id, ": read model has balance ",
                                   balance, " version ", version, " status ",
                                   status, "; events say ", s.balance, ", ",
                                   s.version, ", ", want_status));
    }
    model.erase(it);
  }
  for (const auto& [id, row] : model) {
    diffs.push_back(
        absl::StrCat("account ", id, " in the read model has no events"));
  }
  pqxx::result hist = tx.exec(
      "SELECT account_id::text, version, balance_after, transaction_id, "
      "position FROM account_history");
  size_t rows = 0;
  for (const auto& row : hist) {
    ++rows;
    auto key = std::make_pair(row[0].as<std::string>(), row[1].as<int64_t>());
    auto it = history.find(key);
    if (it == history.end()) {
      diffs.push_back(absl::StrCat("history row ", key.first, " v", key.second,
                                   " has no event"));
    } else if (it->second.balance_after != row[2].as<int64_t>()) {
      diffs.push_back(absl::StrCat("history row ", key.first, " v", key.second,
                                   ": balance_after ", row[2].as<int64_t>(),
                                   ", events say ", it->second.balance_after));
    } else if (it->second.transaction_id != row[3].as<int64_t>() ||
               it->second.position != row[4].as<int64_t>()) {
      // The streams' order (sql/read/004_stream_order.sql).
      diffs.push_back(absl::StrCat(
          "history row ", key.first, " v", key.second, " is at ",
          row[3].as<int64_t>(), "/", row[4].as<int64_t>(), ", its event at ",
          it->second.transaction_id, "/", it->second.position));
    }
  }
  if (rows != history.size()) {
    diffs.push_back(absl::StrCat("read model has ", rows,
                                 " history rows; events ", history.size()));
  }
  return diffs;
}

}  // namespace bank::testing
