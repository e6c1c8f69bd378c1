// High availability on Patroni (label ha): etcd and three Patroni nodes
// started by the test, the command service and the projector on libpq
// multi-host URIs (target_session_attrs=read-write), the query service on
// prefer-standby, the fault suite's workload (with its min_version reads)
// and its oracle. Each scenario: load, the fault, load on the new primary, then
// every unknown outcome resolved, the projector caught up, and the oracle:
// every acknowledged command stored once, the read model equal to the fold
// of the events, money conserved; and a StreamEntries consumer that read
// through the fault received the whole history exactly once.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/streams_support.h"
#include "tests/faults/settle.h"
#include "tests/faults/workload.h"
#include "tests/support/patroni_cluster.h"
#include "tests/support/system.h"

namespace bank::ha {
namespace {

using faults::Unavailable;
using faults::Workload;
using testing::PatroniCluster;
using testing::System;

PatroniCluster* cluster = nullptr;

class PatroniEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto c = PatroniCluster::Start(3);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster = c->release();
  }
  void TearDown() override {
    delete cluster;
    cluster = nullptr;
  }
};

// How long calls wait for a primary (--db-outage-wait), and the clients'
// deadline: more than a failover takes (ttl 10 s, then the promotion).
constexpr int kOutageWaitSeconds = 20;
constexpr absl::Duration kCallTimeout = absl::Seconds(25);
constexpr absl::Duration kPhase = absl::Seconds(2);

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster, nullptr);
    // Each scenario starts from a whole cluster.
    ASSERT_TRUE(cluster->WaitUntil(
        [](const auto& m) { return PatroniCluster::Healthy(m, 3); },
        absl::Seconds(120)));
  }

  void Boot(const std::string& name) {
    name_ = name;
    ASSERT_TRUE(cluster->CreateDatabase(name + "_events").ok());
    ASSERT_TRUE(cluster->CreateDatabase(name + "_read").ok());
    sys_ = std::make_unique<System>(cluster->Uri(name + "_events"),
                                    cluster->Uri(name + "_read"));
    // The query service reads from a standby while there is one; the
    // workload's reads with min_version check read-your-writes there.
    sys_->query_read_uri = cluster->Uri(name + "_read", "prefer-standby");
    sys_->StartAll(
        {"--db-outage-wait", absl::StrCat(kOutageWaitSeconds)});
    w_ = std::make_unique<Workload>(
        sys_->command_port,
        Workload::Options{.call_timeout = kCallTimeout,
                          .query_port = sys_->query_port});
    w_->OpenAccounts();
    ASSERT_EQ(w_->accounts().size(), 20u);
    // A StreamEntries consumer on the standby-reading query service, through
    // the fault: its tokens must hold across the failover.
    follower_ = std::make_unique<testing::EntryFollower>(sys_->query_port);
    w_->Start();
    absl::SleepFor(kPhase);
  }

  // Load on the new primary, then the oracle.
  void Finish(absl::Duration fault_took) {
    absl::SleepFor(kPhase);
    faults::Settled s = faults::Settle(*w_, sys_->events_uri, sys_->read_uri);
    EXPECT_TRUE(s.diffs.empty());
    std::printf(
        "%s: fault over in %lld ms; %lld sent, %lld acknowledged, %d "
        "unknown at first; longest gap without an acknowledgement %lld ms; "
        "%s\n",
        name_.c_str(),
        static_cast<long long>(absl::ToInt64Milliseconds(fault_took)),
        static_cast<long long>(w_->sent()),
        static_cast<long long>(w_->acked()), s.unknown_before,
        static_cast<long long>(absl::ToInt64Milliseconds(w_->longest_gap())),
        faults::FirstAnswers(*w_).c_str());
    // Every call waited for the new primary and got its true answer: an
    // acknowledgement or a business refusal, never an error.
    for (const auto& [code, n] : w_->first_codes()) {
      EXPECT_TRUE(code == grpc::StatusCode::OK ||
                  code == grpc::StatusCode::FAILED_PRECONDITION)
          << "status " << code << " answered " << n << " times";
    }
    std::printf(
        "%s: appends looked up after a lost connection: %d; min_version "
        "reads: %lld, none older than asked\n",
        name_.c_str(), Count(sys_->command->Log(), "looking it up"),
        static_cast<long long>(w_->reads()));
    // The consumer received every entry, exactly once, in order.
    testing::ExpectTheWholeHistory(*sys_, *follower_);
    std::printf("%s: the StreamEntries consumer reconnected %d times\n",
                name_.c_str(), follower_->reconnects());
    // Those reads were served by a standby (Settle checked each one).
    EXPECT_NE(sys_->query->Log().find("is a streaming replica"),
              std::string::npos);
  }

  static int Count(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos;
         at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  }

  // Waits until `name` is back as a replica on the leader's timeline, with
  // every event the leader has.
  void ExpectRejoined(const std::string& name) {
    ASSERT_TRUE(cluster->WaitUntil(
        [&](const std::vector<PatroniCluster::Member>& members) {
          if (!PatroniCluster::Healthy(members, 3)) return false;
          for (const auto& m : members) {
            if (m.name == name) return m.role != "leader";
          }
          return false;
        },
        absl::Seconds(120)))
        << cluster->Log(name);
    const int64_t on_leader =
        faults::QueryValue(sys_->events_uri, "SELECT count(*) FROM events");
    EXPECT_TRUE(testing::WaitFor(
        [&] {
          return faults::QueryValue(cluster->NodeUri(name, name_ + "_events"),
                                    "SELECT count(*) FROM events") ==
                 on_leader;
        },
        absl::Seconds(30)))
        << name << " does not have the leader's " << on_leader << " events";
  }

  std::string name_;
  std::unique_ptr<System> sys_;
  std::unique_ptr<Workload> w_;
  std::unique_ptr<testing::EntryFollower> follower_;
};

// 1 and 4: kill -9 of the primary's Patroni and PostgreSQL, with a writing
// transaction in flight on it; a standby takes over, the services follow
// it; then the old primary comes back and rejoins as a replica (pg_rewind).
TEST_F(HaTest, UnplannedFailoverThenTheOldPrimaryRejoins) {
  Boot("unplanned");
  const std::optional<std::string> old = cluster->WithRole("leader");
  ASSERT_TRUE(old.has_value());
  // A transaction holding an event position, never to commit: the
  // projector's gap-free rule must neither wait for it forever on the new
  // primary nor skip anything committed around it.
  pqxx::connection holder(sys_->events_uri);
  pqxx::work held(holder);
  held.exec(
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), gen_random_uuid(), "
      "1, 'MoneyDeposited', 1, '{}')");
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster->Kill(*old).ok());
  ASSERT_TRUE(cluster->WaitUntil(
      [&](const std::vector<PatroniCluster::Member>& members) {
        for (const auto& m : members) {
          if (m.role == "leader" && m.state == "running" && m.name != *old) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(60)));
  Finish(absl::Now() - killed);
  ASSERT_TRUE(cluster->StartNode(*old).ok());
  ExpectRejoined(*old);
  EXPECT_NE(cluster->Log(*old).find("pg_rewind"), std::string::npos)
      << "the old primary rejoined without pg_rewind";
}

// 2: a planned switchover to the synchronous standby.
TEST_F(HaTest, PlannedSwitchover) {
  Boot("switchover");
  const std::optional<std::string> to = cluster->WithRole("sync_standby");
  ASSERT_TRUE(to.has_value());
  const absl::Time started = absl::Now();
  ASSERT_TRUE(cluster->Switchover(*to).ok());
  ASSERT_TRUE(cluster->WaitUntil(
      [&](const std::vector<PatroniCluster::Member>& members) {
        for (const auto& m : members) {
          if (m.name == *to) return m.role == "leader" && m.state == "running";
        }
        return false;
      },
      absl::Seconds(60)));
  Finish(absl::Now() - started);
  ASSERT_TRUE(cluster->WaitUntil(
      [](const auto& m) { return PatroniCluster::Healthy(m, 3); },
      absl::Seconds(120)));
}

// 3: the synchronous standby dies. Commits wait for it until Patroni names
// the other replica synchronous (synchronous_mode, not strict), then go on;
// nothing acknowledged is lost either way.
TEST_F(HaTest, SynchronousStandbyKilled) {
  Boot("syncdown");
  const std::optional<std::string> sync = cluster->WithRole("sync_standby");
  ASSERT_TRUE(sync.has_value());
  const int64_t acked_before = w_->acked();
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster->Kill(*sync).ok());
  // Writes go on: acknowledgements after the kill, a new sync standby.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const std::optional<std::string> now = cluster->WithRole("sync_standby");
        return now.has_value() && *now != *sync &&
               w_->acked() > acked_before + 100;
      },
      absl::Seconds(60)));
  Finish(absl::Now() - killed);
  ASSERT_TRUE(cluster->StartNode(*sync).ok());
  ExpectRejoined(*sync);
}

}  // namespace
}  // namespace bank::ha

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new bank::ha::PatroniEnvironment);
  return RUN_ALL_TESTS();
}
