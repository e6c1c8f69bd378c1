#include "common/db/health_probe.h"

#include <memory>
#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/time/clock.h"

namespace bank::db {

HealthProbe::HealthProbe(std::string uri, absl::Duration interval,
                         std::function<void(bool)> on_change)
    : uri_(std::move(uri)),
      interval_(interval),
      on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Loop(); });
}

HealthProbe::~HealthProbe() {
  stopping_ = true;
  thread_.join();
}

void HealthProbe::Loop() {
  std::unique_ptr<pqxx::connection> conn;
  bool first = true;
  while (!stopping_.load()) {
    bool ok = false;
    try {
      if (conn == nullptr || !conn->is_open()) {
        // Bound the connect so a black-holed server cannot stall the probe.
        std::string uri = uri_;
        if (!absl::StrContains(uri, "connect_timeout")) {
          uri += absl::StrContains(uri, "://")
                     ? (absl::StrContains(uri, "?") ? "&connect_timeout=2"
                                                    : "?connect_timeout=2")
                     : " connect_timeout=2";
        }
        conn = std::make_unique<pqxx::connection>(uri);
        conn->set_variable("application_name", "'bank-health-probe'");
      }
      pqxx::nontransaction tx(*conn);
      tx.exec("SELECT 1");
      ok = true;
    } catch (const std::exception&) {
      conn.reset();
    }
    if (first || ok != reachable_.load()) {
      reachable_ = ok;
      on_change_(ok);
      first = false;
    }
    absl::Time until = absl::Now() + interval_;
    while (!stopping_.load() && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

}  // namespace bank::db
