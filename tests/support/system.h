#ifndef BANK_TESTS_SUPPORT_SYSTEM_H_
#define BANK_TESTS_SUPPORT_SYSTEM_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bank/v1/bank.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/process.h"

namespace bank::testing {

// The real system for end-to-end tests: fresh events and read databases in a
// test's PostgreSQL cluster, and the real command-service, projector and
// query-service executables on free ports, with clients for them.
class System {
 public:
  // Creates databases <name>_events and <name>_read.
  System(PgCluster& pg, const std::string& name);
  // On databases that exist already (a replicated cluster's, say).
  System(std::string events_uri, std::string read_uri);
  ~System();

  std::unique_ptr<Process> StartCommandService(
      const std::vector<std::string>& extra = {});
  std::unique_ptr<Process> StartProjector(
      const std::vector<std::string>& extra = {});
  std::unique_ptr<Process> StartQueryService(
      const std::vector<std::string>& extra = {});
  // Starts all three (kept in command, projector, query) and waits for
  // health; `service_flags` go to the command and query services.
  void StartAll(const std::vector<std::string>& service_flags = {});

  // What the server's health service answers for `service` (nullopt: no
  // answer within half a second).
  static std::optional<grpc::health::v1::HealthCheckResponse::ServingStatus>
  Health(int port, const std::string& service);
  // True once the server's health service answers SERVING for `service`.
  static bool WaitServing(int port, const std::string& service,
                          absl::Duration timeout);

  v1::CommandService::Stub& commands();
  v1::QueryService::Stub& queries();

  std::string events_uri, read_uri;
  // Where the query service reads, when not read_uri (a standby, say).
  std::string query_read_uri;
  int command_port = 0, query_port = 0;
  // Prometheus /metrics and /healthz of the processes StartAll started
  // (others serve metrics on a port of their own choosing).
  int command_metrics = 0, projector_metrics = 0, query_metrics = 0;
  std::unique_ptr<Process> command, projector, query;

 private:
  std::unique_ptr<v1::CommandService::Stub> commands_;
  std::unique_ptr<v1::QueryService::Stub> queries_;
};

// Opens an account; returns its id (fails the test on error).
std::string OpenAccount(v1::CommandService::Stub& stub, int64_t initial,
                        const std::string& currency = "EUR");

// A client context with a deadline `seconds` from now.
std::unique_ptr<grpc::ClientContext> Ctx(double seconds = 10);

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_SYSTEM_H_
