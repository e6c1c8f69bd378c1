#ifndef BANK_COMMON_DB_PG_STATUS_H_
#define BANK_COMMON_DB_PG_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bank::db {

// Converts an exception thrown by libpqxx (or the standard library under it)
// into a status; the database edge calls this in its catch blocks so no
// exception crosses a module boundary. `what` names the operation.
//   lost or refused connections, server shutting down, too many clients,
//   a read-only server (a standby since a failover) -> UNAVAILABLE
//   commit outcome unknown                        -> UNAVAILABLE, marked
//                                                    util::IsOutcomeUnknown
//   statement_timeout / query canceled            -> DEADLINE_EXCEEDED
//   serialization failure, deadlock               -> ABORTED
//   unique violation                              -> ALREADY_EXISTS
//   anything else                                 -> INTERNAL
// The message names no host, address, socket or port (WithoutEndpoints):
// statuses reach clients, who need not learn where the database runs.
absl::Status StatusFromException(const std::exception& e,
                                 absl::string_view what);

// `msg` (a libpq error) without the host, address, socket and port it names.
std::string WithoutEndpoints(std::string msg);

// The SQLSTATE of a libpqxx sql_error, or "" for other exceptions.
std::string SqlState(const std::exception& e);

// True for statuses produced from a broken or unusable connection, after
// which the connection should be discarded.
bool IsConnectionLost(const std::exception& e);

}  // namespace bank::db

#endif  // BANK_COMMON_DB_PG_STATUS_H_
