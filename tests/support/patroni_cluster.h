#ifndef BANK_TESTS_SUPPORT_PATRONI_CLUSTER_H_
#define BANK_TESTS_SUPPORT_PATRONI_CLUSTER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/process.h"

namespace bank::testing {

// A throwaway highly available PostgreSQL for one test program: one etcd
// member and `nodes` Patroni nodes (PostgreSQL 15 each), all on free ports
// of 127.0.0.1 in a fresh temporary folder, trust authentication, with
// synchronous replication (synchronous_mode), pg_rewind on rejoin, ttl 10 s
// and loop_wait 2 s. Runs the servers as the "postgres" user when root.
// fsync is off: the tests kill processes, never the machine, and the
// operating system keeps what a killed process wrote.
class PatroniCluster {
 public:
  struct Member {
    std::string name;   // n0, n1, ...
    std::string role;   // leader, sync_standby, replica
    std::string state;  // running, stopped, starting, ...
    int timeline = 0;
  };

  // Starts etcd and the nodes; returns once there is a leader, a
  // synchronous standby and every node runs.
  static absl::StatusOr<std::unique_ptr<PatroniCluster>> Start(int nodes = 3);
  ~PatroniCluster();

  // A libpq multi-host URI of every node, e.g.
  // postgresql://postgres@127.0.0.1:p0,127.0.0.1:p1,.../db
  //   ?target_session_attrs=read-write&connect_timeout=2
  std::string Uri(const std::string& db,
                  const std::string& session_attrs = "read-write") const;
  // A URI of one node alone.
  std::string NodeUri(const std::string& name, const std::string& db) const;
  // Creates a database on the leader; returns once every node has it.
  absl::Status CreateDatabase(const std::string& name);

  // The members as Patroni's REST API of a running node tells them.
  absl::StatusOr<std::vector<Member>> Members() const;
  // The name of the member with `role`, if any.
  std::optional<std::string> WithRole(const std::string& role) const;
  // Until every node runs and `ready(members)` holds, at most `timeout`.
  bool WaitUntil(const std::function<bool(const std::vector<Member>&)>& ready,
                 absl::Duration timeout) const;
  // Whether there is a leader, a synchronous standby, and `running` members
  // all running on the leader's timeline.
  static bool Healthy(const std::vector<Member>& members, int running);

  // kill -9 of the node's Patroni and its PostgreSQL (postmaster).
  absl::Status Kill(const std::string& name);
  // Starts a killed node's Patroni again (it rejoins, with pg_rewind).
  absl::Status StartNode(const std::string& name);
  // patronictl switchover to `candidate`.
  absl::Status Switchover(const std::string& candidate);

  int size() const { return static_cast<int>(nodes_.size()); }
  std::string Log(const std::string& name) const;

 private:
  struct Node {
    std::string name;
    int pg_port = 0, rest_port = 0;
    std::string config;  // The Patroni YAML file.
    std::unique_ptr<Process> patroni;
  };
  PatroniCluster() = default;
  Node* Find(const std::string& name);
  std::unique_ptr<Process> RunAsServerUser(
      const std::string& binary, const std::vector<std::string>& args) const;
  // The postmaster's pid from its postmaster.pid, or 0.
  int PostmasterPid(const Node& node) const;

  std::string dir_;
  int etcd_port_ = 0, etcd_peer_port_ = 0;
  std::unique_ptr<Process> etcd_;
  std::vector<Node> nodes_;
};

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_PATRONI_CLUSTER_H_
