#include "common/db/pg_status.h"

#include <pqxx/pqxx>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/util/outcome.h"

namespace bank::db {

std::string SqlState(const std::exception& e) {
  // libpqxx 6.4 throws class 40 errors as transaction_rollback, which is not
  // an sql_error and keeps no SQLSTATE: its subclass says which one it was.
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) {
    return "40001";
  }
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return "40P01";
  }
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return "40003";
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return "40000";
  }
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  if (sql == nullptr) return "";
  if (!sql->sqlstate().empty()) return sql->sqlstate();
  // libpqxx 6.4 sometimes reports a server error without its SQLSTATE; the
  // message's fixed prefix still says which error it was.
  static constexpr std::pair<const char*, const char*> kByMessage[] = {
      {"duplicate key value violates unique constraint", "23505"},
      {"deadlock detected", "40P01"},
      {"could not serialize access", "40001"},
      {"canceling statement due to statement timeout", "57014"},
      {"canceling statement due to user request", "57014"},
      {"terminating connection", "57P01"},
      {"permission denied", "42501"},
      {"must be owner of", "42501"},
      {"in a read-only transaction", "25006"},
  };
  const std::string msg = e.what();
  for (const auto& [prefix, state] : kByMessage) {
    if (msg.find(prefix) != std::string::npos) return state;
  }
  return "";
}

bool IsConnectionLost(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
      dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return true;
  }
  const std::string state = SqlState(e);
  // 25006: the server is a standby now (a failover demoted it); the pool
  // drops the connection and opens one to wherever the primary is.
  return absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
         state == "25006";
}

std::string WithoutEndpoints(std::string msg) {
  // libpq's words for where it tried to connect (PostgreSQL 15's and
  // earlier forms): the host, its address, the socket and the port.
  static const std::regex kEndpoints[] = {
      std::regex(R"re( at "[^"]*"( \([^)]*\))?(, port \d+)?)re"),
      std::regex(R"re( on socket "[^"]*")re"),
      std::regex(R"re( "[^"]*" \([^)]*\))re"),
      std::regex(R"re(host (name )?"[^"]*")re"),
      std::regex(R"re( port \d+)re"),
  };
  static const char* const kReplacements[] = {"", "", "", "host$1", " port"};
  for (size_t i = 0; i < std::size(kEndpoints); ++i) {
    msg = std::regex_replace(msg, kEndpoints[i], kReplacements[i]);
  }
  return msg;
}

absl::Status StatusFromException(const std::exception& e,
                                 absl::string_view what) {
  std::string msg = WithoutEndpoints(
      std::string(absl::StripTrailingAsciiWhitespace(e.what())));
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return util::OutcomeUnknownError(
        absl::StrCat(what, ": connection lost during commit: ", msg));
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(
        absl::StrCat(what, ": database unreachable: ", msg));
  }
  const std::string state = SqlState(e);
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
      state == "53300" || state == "53000") {
    return absl::UnavailableError(
        absl::StrCat(what, ": database unavailable: ", msg));
  }
  if (state == "25006") {
    return absl::UnavailableError(absl::StrCat(
        what,
        ": the database is read-only (a standby since a failover?): ", msg));
  }
  if (state == "42P01" || state == "3D000") {
    return absl::UnavailableError(absl::StrCat(
        what, ": database or schema not ready (is its owner running?): ", msg));
  }
  if (state == "57014") {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": statement timed out: ", msg));
  }
  if (state == "40001" || state == "40P01" || state == "40000") {
    return absl::AbortedError(absl::StrCat(what, ": ", msg));
  }
  if (state == "40003") {
    return util::OutcomeUnknownError(
        absl::StrCat(what, ": statement completion unknown: ", msg));
  }
  if (state == "23505") {
    return absl::AlreadyExistsError(absl::StrCat(what, ": ", msg));
  }
  if (dynamic_cast<const pqxx::usage_error*>(&e) == nullptr &&
      dynamic_cast<const pqxx::sql_error*>(&e) == nullptr &&
      dynamic_cast<const pqxx::failure*>(&e) != nullptr) {
    return absl::UnavailableError(
        absl::StrCat(what, ": database failure: ", msg));
  }
  return absl::InternalError(absl::StrCat(what, ": ", msg));
}

}  // namespace bank::db
