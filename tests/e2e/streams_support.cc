#include "tests/e2e/streams_support.h"

#include <map>
#include <pqxx/pqxx>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/faults/settle.h"

namespace bank::testing {

EntryFollower::EntryFollower(int port, std::string token, int max_batch)
    : port_(port), max_batch_(max_batch), token_(std::move(token)) {
  thread_ = std::thread([this] { Run(); });
}

EntryFollower::~EntryFollower() { Stop(); }

void EntryFollower::Stop() {
  stopping_ = true;
  {
    absl::MutexLock lock(&mu_);
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void EntryFollower::Run() {
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  bool first = true;
  while (!stopping_.load()) {
    grpc::ClientContext ctx;
    v1::StreamEntriesRequest req;
    req.set_max_batch(max_batch_);
    {
      absl::MutexLock lock(&mu_);
      req.set_resume_token(token_);
      ctx_ = &ctx;
    }
    if (stopping_.load()) ctx.TryCancel();
    if (!first) ++reconnects_;
    first = false;
    auto reader = stub->StreamEntries(&ctx, req);
    v1::EntryBatch batch;
    while (reader->Read(&batch)) {
      absl::MutexLock lock(&mu_);
      for (const auto& e : batch.entries()) {
        received_.push_back(
            {e.account_id(), e.entry().version(), e.entry().position()});
      }
      token_ = batch.resume_token();
    }
    grpc::Status s = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      ctx_ = nullptr;
      if (!stopping_.load() && s.error_code() != grpc::UNAVAILABLE) {
        failures_.push_back(
            absl::StrCat(s.error_code(), ": ", s.error_message()));
      }
    }
    if (!stopping_.load()) absl::SleepFor(absl::Milliseconds(50));
  }
}

std::vector<Received> EntryFollower::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

size_t EntryFollower::count() const {
  absl::MutexLock lock(&mu_);
  return received_.size();
}

std::string EntryFollower::token() const {
  absl::MutexLock lock(&mu_);
  return token_;
}

std::vector<std::string> EntryFollower::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

std::vector<Received> HistoryInStreamOrder(const std::string& read_uri) {
  pqxx::connection c(read_uri);
  pqxx::nontransaction tx(c);
  std::vector<Received> out;
  for (const auto& row :
       tx.exec("SELECT account_id::text, version, position FROM "
               "account_history ORDER BY transaction_id, position")) {
    out.push_back(
        {row[0].as<std::string>(), row[1].as<int64_t>(), row[2].as<int64_t>()});
  }
  return out;
}

std::vector<std::string> CompareWithHistory(const std::vector<Received>& got,
                                            const std::string& read_uri) {
  std::vector<std::string> diffs;
  auto note = [&](std::string d) {
    if (diffs.size() < 20) diffs.push_back(std::move(d));
  };
  std::set<int64_t> seen;
  std::map<std::string, int64_t> version;
  for (const Received& r : got) {
    if (!seen.insert(r.position).second) {
      note(absl::StrCat("position ", r.position, " received twice"));
    }
    int64_t& v = version[r.account_id];
    if (r.version != v + 1) {
      note(absl::StrCat("account ", r.account_id, ": version ", r.version,
                        " after ", v));
    }
    v = r.version;
  }
  std::vector<Received> want = HistoryInStreamOrder(read_uri);
  if (got.size() != want.size()) {
    note(absl::StrCat("received ", got.size(), " entries, the history has ",
                      want.size()));
  }
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (!(got[i] == want[i])) {
      note(absl::StrCat("entry ", i, ": received position ", got[i].position,
                        ", the history's is ", want[i].position));
      break;
    }
  }
  return diffs;
}

int64_t HistoryRows(const System& sys) {
  return faults::QueryValue(sys.read_uri,
                            "SELECT count(*) FROM account_history");
}

int64_t EventRows(const System& sys) {
  return faults::QueryValue(sys.events_uri, "SELECT count(*) FROM events");
}

bool CaughtUp(const System& sys, absl::Duration timeout) {
  return WaitFor([&] { return HistoryRows(sys) == EventRows(sys); }, timeout);
}

void Deposit(System& sys, const std::string& account, int64_t amount) {
  v1::DepositRequest d;
  d.set_account_id(account);
  d.set_amount(amount);
  v1::CommandResult r;
  auto ctx = Ctx();
  grpc::Status s = sys.commands().Deposit(ctx.get(), d, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

double QueryMetric(const System& sys, const std::string& series) {
  return MetricValue(HttpGet(sys.query_metrics, "/metrics").body, series);
}

// The end of a scenario: the load stopped and checked (faults::Settle),
// then what `follower` received must be the whole history, exactly.
void ExpectTheWholeHistory(System& sys, EntryFollower& follower) {
  const size_t total = static_cast<size_t>(HistoryRows(sys));
  EXPECT_GT(total, 1000u);
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() >= total; }, absl::Seconds(60)));
  follower.Stop();
  std::vector<std::string> failures = follower.failures();
  EXPECT_TRUE(failures.empty()) << failures[0];
  std::vector<std::string> diffs =
      CompareWithHistory(follower.received(), sys.read_uri);
  EXPECT_TRUE(diffs.empty()) << diffs[0];
}

void SettleAndExpectTheWholeHistory(faults::Workload& w, System& sys,
                                    EntryFollower& follower) {
  faults::Settled settled = faults::Settle(w, sys.events_uri, sys.read_uri);
  EXPECT_TRUE(settled.diffs.empty());
  ExpectTheWholeHistory(sys, follower);
}

}  // namespace bank::testing
