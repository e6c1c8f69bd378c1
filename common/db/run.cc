#include "common/db/run.h"

namespace bank::db {

absl::Status Session::Connect() {
  if (conn_ != nullptr && conn_->is_open()) return absl::OkStatus();
  return RunMapped(
      "connecting to the database", [] {},
      [this]() -> absl::Status {
        auto conn = std::make_unique<pqxx::connection>(options_.uri);
        conn->set_variable("application_name",
                           conn->quote(options_.application_name));
        if (options_.on_connect) options_.on_connect(*conn);
        conn_ = std::move(conn);
        return absl::OkStatus();
      });
}

absl::Status CheckReachable(const std::string& uri, absl::string_view what) {
  return RunMapped(
      absl::StrCat("connecting to the ", what), [] {},
      [&]() -> absl::Status {
        pqxx::connection probe(uri);
        return absl::OkStatus();
      });
}

}  // namespace bank::db
