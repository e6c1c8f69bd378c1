#ifndef BANK_TESTS_SUPPORT_PG_CLUSTER_H_
#define BANK_TESTS_SUPPORT_PG_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace bank::testing {

// A throwaway PostgreSQL cluster for one test program: initdb into a fresh
// temporary folder, started on a free port of 127.0.0.1 with trust
// authentication, stopped and removed on destruction. When the tests run as
// root the server runs as the unprivileged "postgres" user (initdb refuses
// root). The server's binaries come from $BANK_PG_BINDIR or the newest
// /usr/lib/postgresql/*/bin.
class PgCluster {
 public:
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start();
  // A hot standby of `primary` (pg_basebackup, streaming replication), on a
  // port of its own.
  static absl::StatusOr<std::unique_ptr<PgCluster>> StartStandbyOf(
      const PgCluster& primary);
  ~PgCluster();

  // The folder of PostgreSQL's server binaries (initdb, pg_ctl, ...).
  static std::string ServerBinDir();

  int port() const { return port_; }
  // postgresql://postgres@127.0.0.1:<port>/<db>
  std::string Uri(const std::string& db) const;
  // Creates an empty database.
  absl::Status CreateDatabase(const std::string& name);
  // pg_ctl stop (-m immediate when immediate: a crash, no checkpoint).
  absl::Status Stop(bool immediate);
  // Starts a stopped cluster again on the same port.
  absl::Status Restart();

 private:
  PgCluster() = default;
  absl::Status MakeDir();
  // Starts the server on a free port (a few tries: ports race).
  absl::Status StartOnAFreePort();
  absl::Status RunAsServerUser(const std::string& command) const;
  absl::Status StartServer();

  std::string bindir_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

// A free TCP port on 127.0.0.1 (free when asked; take it quickly), below the
// ephemeral range, and never the same twice in one process.
int PickFreePort();

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_PG_CLUSTER_H_
