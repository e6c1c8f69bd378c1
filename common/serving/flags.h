#ifndef BANK_COMMON_SERVING_FLAGS_H_
#define BANK_COMMON_SERVING_FLAGS_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "common/grpc/server.h"

namespace bank::serving {

// What every process of the system (both servers and the projector) reads
// from its command line, the same way.
struct ProcessFlags {
  // Prometheus /metrics and /healthz (host:port); empty disables.
  std::string metrics_listen;
  std::string log_level = "info";
};

// What both gRPC servers also read.
struct ServerFlags {
  std::string listen;
  int db_pool_size = 16;
  // TLS (see grpcutil::ServerOptions); empty: plain text.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  absl::Duration shutdown_grace = absl::Seconds(10);
  // How long a call waits for an unreachable database (reconnecting with
  // backoff), within its deadline, before it answers UNAVAILABLE.
  absl::Duration db_outage_wait = absl::Seconds(2);
};

// Adds --metrics-listen and --log-level (env BANK_METRICS_LISTEN,
// BANK_LOG_LEVEL), with `flags`' values as the defaults.
void AddProcessFlags(CLI::App& app, ProcessFlags& flags);
// Adds --listen (env `listen_env`), --db-pool-size, --tls-cert, --tls-key,
// --tls-client-ca, --shutdown-grace and --db-outage-wait (seconds), with
// `flags`' values as the defaults.
void AddServerFlags(CLI::App& app, ServerFlags& flags,
                    const std::string& listen_env);

// Starts logging as `name` at the flags' level. Returns 0, or 2 after
// printing why when the level is not one.
int InitLogging(const char* name, const ProcessFlags& flags);

// The server's listening address and TLS files, as the flags say.
grpcutil::ServerOptions ServerOptionsOf(const ServerFlags& flags);

}  // namespace bank::serving

#endif  // BANK_COMMON_SERVING_FLAGS_H_
