#include "common/serving/serve.h"

#include <atomic>
#include <memory>

#include "common/db/health_probe.h"
#include "common/log/log.h"
#include "common/util/signals.h"

namespace bank::serving {

int ServeUntilSignal(grpcutil::Server& server, metrics::Registry& registry,
                     const ServeOptions& options) {
  std::atomic<bool> db_ok{false};
  auto probe = std::make_unique<db::HealthProbe>(
      options.db_uri, absl::Seconds(1), [&](bool ok) {
        db_ok = ok;
        server.SetServing(ok);
        if (ok) {
          spdlog::info("{} reachable: serving", options.db_label);
        } else {
          spdlog::warn("{} unreachable: health NOT_SERVING", options.db_label);
        }
      });
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (!options.metrics_listen.empty()) {
    auto e = metrics::HttpExporter::Start(options.metrics_listen, registry,
                                          [&] { return db_ok.load(); });
    if (!e.ok()) {
      spdlog::error("cannot start: {}", e.status().message());
      probe.reset();
      server.Shutdown(absl::ZeroDuration());
      server.Wait();
      return 1;
    }
    exporter = *std::move(e);
    spdlog::info("metrics on {} (port {})", options.metrics_listen,
                 exporter->port());
  }
  int sig = util::WaitForTerminationSignal();
  spdlog::info("signal {}: shutting down", sig);
  probe.reset();  // Health stays NOT_SERVING from here on.
  server.Shutdown(options.shutdown_grace);
  server.Wait();
  return 0;
}

}  // namespace bank::serving
