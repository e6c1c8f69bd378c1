#ifndef BANK_COMMON_METRICS_METRICS_H_
#define BANK_COMMON_METRICS_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bank::metrics {

using Labels = std::map<std::string, std::string>;

// A monotonically increasing value. Thread-safe.
class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending).
// Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound, then +Inf; and the sum.
  std::vector<uint64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();

// The metrics of one process, rendered in the Prometheus text format.
// Getting a metric that exists returns the same object. Thread-safe.
class Registry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help,
                  const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const Labels& labels = {},
                          std::vector<double> bounds = LatencyBuckets());
  // A gauge whose value is read from `fn` at each scrape.
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        std::function<double()> fn, const Labels& labels = {});

  // A counter whose value is read from `fn` at each scrape (for totals a
  // component keeps itself).
  void AddCallbackCounter(const std::string& name, const std::string& help,
                          std::function<double()> fn,
                          const Labels& labels = {});

  // Prometheus text exposition format 0.0.4.
  std::string Render() const;

 private:
  struct Family {
    std::string type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> callbacks;
  };
  Family& FamilyFor(const std::string& name, const std::string& type,
                    const std::string& help) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
};

// The outcome metrics of one RPC: a counter by status code and a latency
// histogram, e.g. bank_queries_total{rpc="GetBalance",code="OK"}. The
// registry is asked once per code, not once per call, so a call costs two
// atomic updates instead of building label strings under the registry's
// lock. Thread-safe.
class RpcMetrics {
 public:
  // `label` names the RPC's label ("rpc", "type"), `rpc` its value.
  RpcMetrics(Registry& registry, std::string counter_name,
             std::string counter_help, const std::string& histogram_name,
             const std::string& histogram_help, std::string label,
             std::string rpc);
  void Record(absl::StatusCode code, absl::Duration latency);

 private:
  static constexpr int kCodes = 17;  // OK .. UNAUTHENTICATED
  Registry& registry_;
  const std::string counter_name_;
  const std::string counter_help_;
  const std::string label_;
  const std::string rpc_;
  Histogram& duration_;
  std::atomic<Counter*> by_code_[kCodes] = {};
};

// Serves GET /metrics (the registry) and GET /healthz (200 "ok" while
// `healthy` returns true, else 503) over HTTP. Thread-safe.
class HttpExporter {
 public:
  // `listen` is host:port (port 0 picks a free one). UNAVAILABLE when it
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpExporter>> Start(
      const std::string& listen, Registry& registry,
      std::function<bool()> healthy);
  ~HttpExporter();
  int port() const { return port_; }

  struct Impl;  // The server's state, shared with its request handler.

 private:
  HttpExporter() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace bank::metrics

#endif  // BANK_COMMON_METRICS_METRICS_H_
