// Nothing lost: the real three processes and PostgreSQL under a mixed load,
// one injected fault per scenario, and the oracle after each (see
// workload.h). BANK_FAULT_SECONDS sets the load per phase (default 2),
// BANK_FAULT_CLIENTS and BANK_FAULT_ACCOUNTS its size (8 and 20); the suite
// prints one line of figures per scenario and a summary table.
#include <signal.h>

#include <cstdlib>
#include <optional>
#include <pqxx/pqxx>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/faults/settle.h"
#include "tests/faults/workload.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank::faults {
namespace {

using testing::HttpGet;
using testing::PgCluster;
using testing::Process;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;
std::vector<std::string>* summary = nullptr;

absl::Duration Phase() {
  const char* s = std::getenv("BANK_FAULT_SECONDS");
  return absl::Seconds(s ? std::atof(s) : 2.0);
}

// The table of every scenario, printed after the last.
void PrintSummary() {
  std::printf(
      "\nfault scenarios (load phases of %s):\n%-28s %8s %8s %8s %7s %12s "
      "%11s\n",
      absl::FormatDuration(Phase()).c_str(), "scenario", "sent", "acked",
      "unknown", "faults", "longest_gap", "oracle_diff");
  for (const std::string& line : *summary) std::printf("%s\n", line.c_str());
  delete summary;
}

class FaultTest : public ::testing::Test {
 protected:
  void Boot(const std::string& name,
            std::vector<std::string> command_flags = {}) {
    name_ = name;
    sys_ = std::make_unique<System>(*pg, name);
    if (command_flags.empty()) {
      sys_->StartAll();
    } else {
      sys_->command = sys_->StartCommandService(command_flags);
      ASSERT_TRUE(
          System::WaitServing(sys_->command_port, "", absl::Seconds(30)));
      sys_->projector = sys_->StartProjector();
      sys_->query = sys_->StartQueryService();
    }
  }
  void Load(Workload::Options o = {}) {
    // The size of a longer run by hand: BANK_FAULT_CLIENTS,
    // BANK_FAULT_ACCOUNTS.
    if (const char* c = std::getenv("BANK_FAULT_CLIENTS")) {
      o.clients = std::max(o.clients, std::atoi(c));
    }
    if (const char* a = std::getenv("BANK_FAULT_ACCOUNTS")) {
      o.accounts = std::max(2, std::atoi(a));
    }
    o.query_port = sys_->query_port;
    w_ = std::make_unique<Workload>(sys_->command_port, o);
    w_->OpenAccounts();
    ASSERT_EQ(static_cast<int>(w_->accounts().size()), o.accounts);
    w_->Start();
    absl::SleepFor(Phase());
  }
  // Stops the load, resolves unknown outcomes, waits for the projector and
  // checks the oracle; records the scenario's figures.
  void Finish(int faults) {
    absl::SleepFor(Phase());
    const Settled settled = Settle(*w_, sys_->events_uri, sys_->read_uri);
    const std::vector<std::string>& diffs = settled.diffs;
    const int unknown_before = settled.unknown_before;
    std::string line = absl::StrFormat(
        "%-28s %8d %8d %8d %7d %10dms %11d", name_, w_->sent(), w_->acked(),
        unknown_before, faults, absl::ToInt64Milliseconds(w_->longest_gap()),
        diffs.size());
    std::printf("%s  min_version reads: %d  %s\n", line.c_str(),
                static_cast<int>(w_->reads()), FirstAnswers(*w_).c_str());
    summary->push_back(line);
  }
  std::unique_ptr<System> sys_;
  std::unique_ptr<Workload> w_;
  std::string name_;
};

TEST_F(FaultTest, NoFault) {
  Boot("nofault");
  Load();
  Finish(0);
}

TEST_F(FaultTest, KillNineCommandServiceUnderLoad) {
  Boot("killcmd");
  Load();
  sys_->command->Signal(SIGKILL);
  sys_->command->Wait(absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(300));
  sys_->command = sys_->StartCommandService();
  ASSERT_TRUE(System::WaitServing(sys_->command_port, "", absl::Seconds(30)))
      << sys_->command->Log();
  Finish(1);
}

TEST_F(FaultTest, KillNineProjectorManyTimes) {
  Boot("killproj");
  Load();
  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    sys_->projector->Signal(SIGKILL);
    sys_->projector->Wait(absl::Seconds(10));
    sys_->projector = sys_->StartProjector();
    absl::SleepFor(absl::Milliseconds(100 + rng() % 300));
  }
  Finish(5);
}

TEST_F(FaultTest, PostgresImmediateStopUnderLoad) {
  Boot("pgstop");
  Load();
  ASSERT_TRUE(pg->Stop(/*immediate=*/true).ok());
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(pg->Restart().ok());
  Finish(1);
  // The only errors clients saw: business refusals, or unavailable and
  // deadline exceeded (resolved above by retrying the same command_id).
  for (const auto& [code, n] : w_->first_codes()) {
    EXPECT_TRUE(code == grpc::StatusCode::OK ||
                code == grpc::StatusCode::FAILED_PRECONDITION ||
                code == grpc::StatusCode::UNAVAILABLE ||
                code == grpc::StatusCode::DEADLINE_EXCEEDED)
        << "status " << code << " seen " << n << " times";
  }
  // The command service stayed up: every UNAVAILABLE came from it, and says
  // whether the command was applied (the oracle checked each "not applied").
  EXPECT_EQ(w_->unavailable(Unavailable::kTransport), 0);
}

// Down for longer than a call waits for it (--db-outage-wait, 2 s): calls
// sent meanwhile are answered "not applied", calls whose batch was in flight
// when it died "outcome unknown" unless the database came back within their
// deadline; the oracle checks that no "not applied" command has events.
TEST_F(FaultTest, PostgresDownLongerThanCallsWait) {
  Boot("pgdown");
  Load();
  ASSERT_TRUE(pg->Stop(/*immediate=*/true).ok());
  absl::SleepFor(absl::Seconds(6));
  ASSERT_TRUE(pg->Restart().ok());
  Finish(1);
  EXPECT_EQ(w_->unavailable(Unavailable::kTransport), 0);
  EXPECT_GT(w_->unavailable(Unavailable::kNotApplied), 0);
}

TEST_F(FaultTest, ListenConnectionCut) {
  Boot("cutlisten");
  Load();
  int64_t killed = QueryValue(sys_->events_uri,
                         "SELECT count(pg_terminate_backend(pid)) FROM "
                         "pg_stat_activity WHERE application_name = "
                         "'bank-projector-listen'");
  EXPECT_GE(killed, 1);
  Finish(1);
}

TEST_F(FaultTest, TransactionHeldOpenWhileOthersCommit) {
  Boot("held");
  Load();
  {
    pqxx::connection c(sys_->events_uri);
    pqxx::work held(c);
    held.exec("CREATE TEMP TABLE hold (i int)");  // takes a transaction id
    absl::SleepFor(Phase());
    held.commit();
  }
  Finish(1);
}

TEST_F(FaultTest, TwoProjectorsNeverBothApply) {
  Boot("twoproj");
  int second_metrics = testing::PickFreePort();
  auto second = sys_->StartProjector(
      {"--metrics-listen", "127.0.0.1:" + std::to_string(second_metrics)});
  Load();
  int both = 0, unanswered = 0;
  auto active = [&](int port) -> std::optional<double> {
    testing::HttpResponse r = HttpGet(port, "/metrics");
    if (r.status != 200) return std::nullopt;
    return testing::MetricValue(r.body, "bank_projector_active");
  };
  for (int i = 0; i < 20; ++i) {
    // A live projector that does not answer is a failed sample, not a pass.
    std::optional<double> a;
    if (i <= 10) {
      a = active(sys_->projector_metrics);
      if (!a.has_value()) ++unanswered;
    }
    std::optional<double> b = active(second_metrics);
    if (!b.has_value()) ++unanswered;
    if (a == 1 && b == 1) ++both;
    if (i == 10) {  // The active one dies; the standby takes over.
      sys_->projector->Signal(SIGKILL);
      sys_->projector->Wait(absl::Seconds(10));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(both, 0);
  EXPECT_EQ(unanswered, 0);
  Finish(1);
}

TEST_F(FaultTest, PoisonEventIsNeverSkippedSilently) {
  Boot("poison");
  Load();
  int64_t position = QueryValue(
      sys_->events_uri,
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), gen_random_uuid(), 1, "
      "'MoneyTeleported', 1, '{}') RETURNING position");
  EXPECT_EQ(sys_->projector->Wait(absl::Seconds(30)), 3)
      << "must stop, not spin";
  EXPECT_NE(sys_->projector->Log().find("position " + std::to_string(position)),
            std::string::npos);
  sys_->projector = sys_->StartProjector({"--skip-poison"});
  Finish(1);
  EXPECT_EQ(QueryValue(sys_->read_uri, "SELECT position FROM poison_events"),
            position);
}

TEST_F(FaultTest, TinyDeadlinesConverge) {
  Boot("tinydeadline");
  Load({.call_timeout = absl::Milliseconds(5)});
  Finish(0);
}

TEST_F(FaultTest, SigtermEachProcessUnderLoad) {
  Boot("sigterm");
  Load();
  sys_->command->Signal(SIGTERM);
  EXPECT_EQ(sys_->command->Wait(absl::Seconds(30)), 0);
  sys_->command = sys_->StartCommandService();
  sys_->projector->Signal(SIGTERM);
  EXPECT_EQ(sys_->projector->Wait(absl::Seconds(30)), 0);
  sys_->projector = sys_->StartProjector();
  sys_->query->Signal(SIGTERM);
  EXPECT_EQ(sys_->query->Wait(absl::Seconds(30)), 0);
  sys_->query = sys_->StartQueryService();
  Finish(3);
}

TEST_F(FaultTest, BurstIsShedAndTheServiceStaysHealthy) {
  Boot("burst", {"--max-in-flight", "8", "--db-pool-size", "4"});
  Load({.clients = 48, .pause = absl::ZeroDuration()});
  EXPECT_TRUE(System::WaitServing(sys_->command_port, "", absl::Seconds(1)))
      << "health must answer during the burst";
  Finish(0);
  EXPECT_GT(w_->first_codes()[grpc::StatusCode::RESOURCE_EXHAUSTED], 0)
      << "the burst was not shed";
}

}  // namespace
}  // namespace bank::faults

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(
          &bank::faults::pg,
          [](bank::testing::PgCluster&) {
            bank::faults::summary = new std::vector<std::string>();
          },
          bank::faults::PrintSummary));
}
