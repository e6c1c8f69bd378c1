#ifndef BANK_SQL_MIGRATIONS_H_
#define BANK_SQL_MIGRATIONS_H_

#include <vector>

#include "common/db/migrations.h"

namespace bank::sql {

// The numbered migrations of sql/events/ and sql/read/, in order, compiled
// into the binary (sql/embed.cmake generates the definitions).
const std::vector<bank::db::Migration>& EventsMigrations();
const std::vector<bank::db::Migration>& ReadMigrations();

}  // namespace bank::sql

#endif  // BANK_SQL_MIGRATIONS_H_
