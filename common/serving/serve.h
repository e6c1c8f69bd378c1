#ifndef BANK_COMMON_SERVING_SERVE_H_
#define BANK_COMMON_SERVING_SERVE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/grpc/server.h"
#include "common/metrics/metrics.h"

namespace bank::serving {

struct ServeOptions {
  std::string db_uri;          // The database health follows.
  std::string db_label;        // For logs, e.g. "events database".
  std::string metrics_listen;  // Empty: no /metrics and /healthz.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Run on a signal before the server drains (e.g. to end open streams).
  std::function<void()> before_shutdown;
};

// The common life of a gRPC service process once its server has started:
// health follows the database (NOT_SERVING while it cannot be reached),
// /metrics and /healthz are served from `registry`, and on SIGINT or SIGTERM
// health goes NOT_SERVING and the server drains and stops. Returns the exit
// code: 0, or 1 when the metrics endpoint cannot start.
// REQUIRES: util::BlockTerminationSignals() was called.
int ServeUntilSignal(grpcutil::Server& server, metrics::Registry& registry,
                     const ServeOptions& options);

// The same life for a process without a gRPC server (the projector):
// /metrics and /healthz are served from `registry` (healthy() answers
// /healthz) unless `metrics_listen` is empty, then `work(stop)` runs on the
// calling thread; SIGINT or SIGTERM sets `stop`, and work is expected to
// return soon after. Returns work's exit code, or 1 when the metrics
// endpoint cannot start.
// REQUIRES: util::BlockTerminationSignals() was called.
int RunUntilSignal(
    metrics::Registry& registry, const std::string& metrics_listen,
    std::function<bool()> healthy,
    const std::function<int(const std::atomic<bool>& stop)>& work);

}  // namespace bank::serving

#endif  // BANK_COMMON_SERVING_SERVE_H_
