#include "common/serving/serve.h"

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <thread>

#include "common/db/health_probe.h"
#include "common/log/log.h"
#include "common/util/signals.h"

namespace bank::serving {
namespace {

// Serves /metrics and /healthz on `listen` (nothing when empty): OK with the
// exporter (null when off), or why it cannot start.
absl::StatusOr<std::unique_ptr<metrics::HttpExporter>> StartMetrics(
    const std::string& listen, metrics::Registry& registry,
    std::function<bool()> healthy) {
  if (listen.empty()) return std::unique_ptr<metrics::HttpExporter>();
  auto e = metrics::HttpExporter::Start(listen, registry, std::move(healthy));
  if (!e.ok()) return e.status();
  spdlog::info("metrics on {} (port {})", listen, (*e)->port());
  return e;
}

}  // namespace

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
  auto exporter = StartMetrics(options.metrics_listen, registry,
                               [&] { return db_ok.load(); });
  if (!exporter.ok()) {
    spdlog::error("cannot start: {}", exporter.status().message());
    probe.reset();
    server.Shutdown(absl::ZeroDuration());
    server.Wait();
    return 1;
  }
  int sig = util::WaitForTerminationSignal();
  spdlog::info("signal {}: shutting down", sig);
  probe.reset();  // Health stays NOT_SERVING from here on.
  if (options.before_shutdown) options.before_shutdown();
  server.Shutdown(options.shutdown_grace);
  server.Wait();
  return 0;
}

int RunUntilSignal(
    metrics::Registry& registry, const std::string& metrics_listen,
    std::function<bool()> healthy,
    const std::function<int(const std::atomic<bool>& stop)>& work) {
  auto exporter = StartMetrics(metrics_listen, registry, std::move(healthy));
  if (!exporter.ok()) {
    spdlog::error("cannot start: {}", exporter.status().message());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread signals([&] {
    int sig = util::WaitForTerminationSignal();
    if (sig == 0 || done.load()) return;
    spdlog::info("signal {}: stopping", sig);
    stop = true;
  });
  const int code = work(stop);
  done = true;
  // Wakes the signal thread when no signal came (it is blocked for it).
  if (!stop.load()) pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return code;
}

}  // namespace bank::serving
