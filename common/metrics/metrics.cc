#include "common/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "civetweb.h"

namespace bank::metrics {
namespace {

std::string LabelString(const Labels& labels) {
  if (labels.empty()) return "";
  std::vector<std::string> parts;
  for (const auto& [k, v] : labels) {
    std::string escaped =
        absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
    parts.push_back(absl::StrCat(k, "=\"", escaped, "\""));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

// Adds one label to a rendered label set ("{a=\"1\"}" + le ->
// "{a=\"1\",le=..}").
std::string WithLabel(const std::string& labels, const std::string& extra) {
  if (labels.empty()) return absl::StrCat("{", extra, "}");
  return absl::StrCat(labels.substr(0, labels.size() - 1), ",", extra, "}");
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return absl::StrCat(v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i =
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,   1,     2.5,  5,     10};
}

Registry::Family& Registry::FamilyFor(const std::string& name,
                                      const std::string& type,
                                      const std::string& help) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  }
  return f;
}

Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, "counter", help).counters[LabelString(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(const std::string& name, const std::string& help,
                          const Labels& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, "gauge", help).gauges[LabelString(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::GetHistogram(const std::string& name,
                                  const std::string& help, const Labels& labels,
                                  std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  auto& slot =
      FamilyFor(name, "histogram", help).histograms[LabelString(labels)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

void Registry::AddCallbackGauge(const std::string& name,
                                const std::string& help,
                                std::function<double()> fn,
                                const Labels& labels) {
  absl::MutexLock lock(&mu_);
  FamilyFor(name, "gauge", help).callbacks[LabelString(labels)] = std::move(fn);
}

void Registry::AddCallbackCounter(const std::string& name,
                                  const std::string& help,
                                  std::function<double()> fn,
                                  const Labels& labels) {
  absl::MutexLock lock(&mu_);
  FamilyFor(name, "counter", help).callbacks[LabelString(labels)] =
      std::move(fn);
}

RpcMetrics::RpcMetrics(Registry& registry, std::string counter_name,
                       std::string counter_help,
                       const std::string& histogram_name,
                       const std::string& histogram_help, std::string label,
                       std::string rpc)
    : registry_(registry),
      counter_name_(std::move(counter_name)),
      counter_help_(std::move(counter_help)),
      label_(std::move(label)),
      rpc_(std::move(rpc)),
      duration_(registry.GetHistogram(histogram_name, histogram_help,
                                      {{label_, rpc_}})) {}

void RpcMetrics::Record(absl::StatusCode code, absl::Duration latency) {
  const int i = static_cast<int>(code);
  Counter* c = nullptr;
  if (i >= 0 && i < kCodes) c = by_code_[i].load(std::memory_order_acquire);
  if (c == nullptr) {
    // First call with this code (or an unknown code): the registry returns
    // the same counter to every thread that races here.
    c = &registry_.GetCounter(
        counter_name_, counter_help_,
        {{label_, rpc_}, {"code", absl::StatusCodeToString(code)}});
    if (i >= 0 && i < kCodes) by_code_[i].store(c, std::memory_order_release);
  }
  c->Inc();
  duration_.Observe(absl::ToDoubleSeconds(latency));
}

std::string Registry::Render() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n# TYPE ", name, " ",
                    f.type, "\n");
    for (const auto& [labels, c] : f.counters) {
      absl::StrAppend(&out, name, labels, " ", Number(c->value()), "\n");
    }
    for (const auto& [labels, g] : f.gauges) {
      absl::StrAppend(&out, name, labels, " ", Number(g->value()), "\n");
    }
    for (const auto& [labels, fn] : f.callbacks) {
      absl::StrAppend(&out, name, labels, " ", Number(fn()), "\n");
    }
    for (const auto& [labels, h] : f.histograms) {
      std::vector<uint64_t> counts = h->CumulativeCounts();
      for (size_t i = 0; i < counts.size(); ++i) {
        std::string le =
            i < h->bounds().size() ? Number(h->bounds()[i]) : "+Inf";
        absl::StrAppend(&out, name, "_bucket",
                        WithLabel(labels, absl::StrCat("le=\"", le, "\"")), " ",
                        counts[i], "\n");
      }
      absl::StrAppend(&out, name, "_sum", labels, " ", Number(h->sum()), "\n",
                      name, "_count", labels, " ", counts.back(), "\n");
    }
  }
  return out;
}

struct HttpExporter::Impl {
  Registry* registry;
  std::function<bool()> healthy;
  mg_context* ctx = nullptr;
};

namespace {

int Reply(mg_connection* conn, int status, const char* type,
          const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status,
            status == 200   ? "OK"
            : status == 404 ? "Not Found"
                            : "Service Unavailable",
            type, body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

int Handle(mg_connection* conn, void* data) {
  auto* impl = static_cast<HttpExporter::Impl*>(data);
  const mg_request_info* info = mg_get_request_info(conn);
  std::string uri = info->local_uri ? info->local_uri : "";
  if (uri == "/metrics") {
    return Reply(conn, 200, "text/plain; version=0.0.4",
                 impl->registry->Render());
  }
  if (uri == "/healthz") {
    bool ok = !impl->healthy || impl->healthy();
    return Reply(conn, ok ? 200 : 503, "text/plain",
                 ok ? "ok\n" : "unhealthy\n");
  }
  return Reply(conn, 404, "text/plain", "not found\n");
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(
    const std::string& listen, Registry& registry,
    std::function<bool()> healthy) {
  static const bool initialized = [] {
    mg_init_library(0);
    return true;
  }();
  (void)initialized;
  auto out = std::unique_ptr<HttpExporter>(new HttpExporter());
  out->impl_ = std::make_unique<Impl>();
  out->impl_->registry = &registry;
  out->impl_->healthy = std::move(healthy);
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads",
                           "2", nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  out->impl_->ctx = mg_start(&callbacks, nullptr, options);
  if (out->impl_->ctx == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen));
  }
  mg_set_request_handler(out->impl_->ctx, "/", Handle, out->impl_.get());
  mg_server_port ports[4];
  int n = mg_get_server_ports(out->impl_->ctx, 4, ports);
  if (n > 0) out->port_ = ports[0].port;
  return out;
}

HttpExporter::~HttpExporter() {
  if (impl_ && impl_->ctx) mg_stop(impl_->ctx);
}

}  // namespace bank::metrics
