#include "common/serving/flags.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace bank::serving {

void AddProcessFlags(CLI::App& app, ProcessFlags& flags) {
  app.add_option("--metrics-listen", flags.metrics_listen,
                 "Prometheus /metrics and /healthz address (empty: off)")
      ->envname("BANK_METRICS_LISTEN")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level,
                 "trace, debug, info, warn, error or off")
      ->envname("BANK_LOG_LEVEL")
      ->capture_default_str();
}

void AddServerFlags(CLI::App& app, ServerFlags& flags,
                    const std::string& listen_env) {
  app.add_option("--listen", flags.listen, "gRPC listen address")
      ->envname(listen_env)
      ->capture_default_str();
  app.add_option("--db-pool-size", flags.db_pool_size,
                 "database connections at most")
      ->envname("BANK_DB_POOL_SIZE")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM certificate chain: serve gRPC over TLS")
      ->envname("BANK_TLS_CERT");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert")
      ->envname("BANK_TLS_KEY");
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "PEM CA: require client certificates signed by it (mTLS)")
      ->envname("BANK_TLS_CLIENT_CA");
  app.add_option_function<double>(
         "--shutdown-grace",
         [&flags](double seconds) {
           flags.shutdown_grace = absl::Seconds(seconds);
         },
         "seconds in-flight calls get to finish on SIGTERM")
      ->envname("BANK_SHUTDOWN_GRACE")
      ->check(CLI::Range(0.0, 3600.0))
      ->default_str(absl::StrCat(absl::ToDoubleSeconds(flags.shutdown_grace)));
  app.add_option_function<double>(
         "--db-outage-wait",
         [&flags](double seconds) {
           flags.db_outage_wait = absl::Seconds(seconds);
         },
         "seconds a call waits for an unreachable database (within its "
         "deadline) before UNAVAILABLE; 0: answer at once")
      ->envname("BANK_DB_OUTAGE_WAIT")
      ->check(CLI::Range(0.0, 3600.0))
      ->default_str(absl::StrCat(absl::ToDoubleSeconds(flags.db_outage_wait)));
}

int InitLogging(const char* name, const ProcessFlags& flags) {
  if (absl::Status s = log::Init(name, flags.log_level); !s.ok()) {
    fprintf(stderr, "%s: %s\n", name, std::string(s.message()).c_str());
    return 2;
  }
  return 0;
}

grpcutil::ServerOptions ServerOptionsOf(const ServerFlags& flags) {
  grpcutil::ServerOptions o;
  o.listen = flags.listen;
  o.tls_cert = flags.tls_cert;
  o.tls_key = flags.tls_key;
  o.tls_client_ca = flags.tls_client_ca;
  return o;
}

}  // namespace bank::serving
