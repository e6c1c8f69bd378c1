#include "tests/faults/settle.h"

#include <map>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/oracle.h"
#include "tests/support/process.h"

namespace bank::faults {

std::vector<std::string> CheckOracle(const Workload& w,
                                     const std::string& events_uri,
                                     const std::string& read_uri) {
  std::vector<std::string> diffs;
  // command_id -> (events, distinct transactions)
  std::map<std::string, std::pair<int64_t, int64_t>> stored;
  {
    pqxx::connection c(events_uri);
    pqxx::work tx(c);
    for (const auto& row :
         tx.exec("SELECT metadata->>'command_id', count(*), "
                 "count(DISTINCT transaction_id) FROM events "
                 "WHERE metadata ? 'command_id' GROUP BY 1")) {
      stored[row[0].as<std::string>()] = {row[1].as<int64_t>(),
                                          row[2].as<int64_t>()};
    }
  }
  int64_t expected_total = w.initial_total();
  for (const Op& op : w.ops()) {
    if (op.unknown) {
      diffs.push_back(
          absl::StrCat("command ", op.command_id, " never resolved"));
      continue;
    }
    auto it = stored.find(op.command_id);
    const int64_t want_events = op.kind == Op::kTransfer ? 2 : 1;
    if (op.code == grpc::StatusCode::OK) {
      if (it == stored.end() || it->second.first != want_events ||
          it->second.second != 1) {
        diffs.push_back(absl::StrCat(
            "acknowledged command ", op.command_id, " has ",
            it == stored.end() ? 0 : it->second.first, " events in ",
            it == stored.end() ? 0 : it->second.second, " transactions"));
      }
      if (op.kind == Op::kDeposit) expected_total += op.amount;
      if (op.kind == Op::kWithdraw) expected_total -= op.amount;
    } else if (it != stored.end()) {
      diffs.push_back(
          absl::StrCat(op.not_applied ? "command answered \"not applied\" "
                                      : "refused command ",
                       op.command_id, " (code ", op.code, ") has events"));
    }
  }
  for (const auto& [id, counts] : stored) {
    if (counts.second > 1) {
      diffs.push_back(absl::StrCat("command ", id, " has events in ",
                                   counts.second, " transactions"));
    }
  }
  for (const std::string& d : testing::CompareReadModel(events_uri, read_uri)) {
    diffs.push_back(d);
  }
  pqxx::connection c(read_uri);
  pqxx::work tx(c);
  pqxx::result r = tx.exec(
      "SELECT coalesce(sum(balance), 0), coalesce(min(balance), 0) "
      "FROM account_balances");
  if (r[0][0].as<int64_t>() != expected_total) {
    diffs.push_back(absl::StrCat("money not conserved: balances sum to ",
                                 r[0][0].as<int64_t>(), ", commands say ",
                                 expected_total));
  }
  if (r[0][1].as<int64_t>() < 0) {
    diffs.push_back(absl::StrCat("negative balance: ", r[0][1].as<int64_t>()));
  }
  return diffs;
}

int64_t QueryValue(const std::string& uri, const std::string& sql) {
  try {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    pqxx::result r = tx.exec(sql);
    tx.commit();
    return r.empty() || r[0][0].is_null() ? -1 : r[0][0].as<int64_t>();
  } catch (const std::exception&) {
    return -2;
  }
}

Settled Settle(Workload& w, const std::string& events_uri,
               const std::string& read_uri) {
  w.Stop();
  Settled out;
  for (const Op& op : w.ops()) out.unknown_before += op.unknown;
  EXPECT_EQ(w.ResolveUnknown(absl::Seconds(60)), 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        // A failed query (negative) is no progress.
        const int64_t projected =
            QueryValue(read_uri,
                       "SELECT (SELECT count(*) FROM account_history) + "
                       "(SELECT count(*) FROM poison_events)");
        return projected >= 0 &&
               projected ==
                   QueryValue(events_uri, "SELECT count(*) FROM events");
      },
      absl::Seconds(60)))
      << "projector did not catch up";
  out.diffs = CheckOracle(w, events_uri, read_uri);
  for (size_t i = 0; i < out.diffs.size() && i < 10; ++i) {
    ADD_FAILURE() << out.diffs[i];
  }
  EXPECT_GT(w.acked(), 0);
  EXPECT_GT(w.reads(), 0);
  EXPECT_EQ(w.stale_reads(), 0)
      << "a min_version read returned an older version";
  EXPECT_EQ(w.failed_reads(), 0)
      << "a min_version read failed with a code no fault explains";
  EXPECT_EQ(w.internal_answers(), 0) << "a command was answered INTERNAL";
  return out;
}

namespace {

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return "OTHER";
  }
}

}  // namespace

std::string FirstAnswers(const Workload& w) {
  std::string codes;
  for (const auto& [code, n] : w.first_codes()) {
    absl::StrAppend(&codes, codes.empty() ? "" : " ", CodeName(code), "=", n);
  }
  return absl::StrCat(
      "first answers: ", codes, "  UNAVAILABLE: not applied ",
      w.unavailable(Unavailable::kNotApplied), ", outcome unknown ",
      w.unavailable(Unavailable::kOutcomeUnknown), ", from the transport ",
      w.unavailable(Unavailable::kTransport));
}

}  // namespace bank::faults
