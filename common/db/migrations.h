#ifndef BANK_COMMON_DB_MIGRATIONS_H_
#define BANK_COMMON_DB_MIGRATIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bank::db {

// One numbered, forward-only migration (sql/<db>/NNN_name.sql).
struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Applies the migrations that `uri`'s database has not seen yet, in order,
// each in its own transaction, recording them in schema_migrations. Several
// processes may call this at once: a session advisory lock named by
// `lock_name` serializes them, and the later ones find nothing to do.
// UNAVAILABLE when the database cannot be reached; INTERNAL (naming the
// migration) when a migration fails; FAILED_PRECONDITION when the database
// has migrations newer than this build knows, or is behind and the role may
// not migrate it. A current schema needs only SELECT on schema_migrations:
// nothing is created or changed.
absl::Status ApplyMigrations(const std::string& uri,
                             const std::vector<Migration>& migrations,
                             absl::string_view lock_name);

}  // namespace bank::db

#endif  // BANK_COMMON_DB_MIGRATIONS_H_
