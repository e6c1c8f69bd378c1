#include "common/db/migrations.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/db/pg_status.h"
#include "common/db/uri.h"

namespace bank::db {

absl::Status ApplyMigrations(const std::string& uri,
                             const std::vector<Migration>& migrations,
                             absl::string_view lock_name) {
  const std::string where = MaskPassword(uri);
  int newest_known = 0;
  for (const Migration& m : migrations)
    newest_known = std::max(newest_known, m.version);
  int applied = 0;
  int current_step = 0;
  try {
    pqxx::connection conn(uri);
    pqxx::nontransaction session(conn);
    // Serializes concurrent starters; released with the session.
    session.exec_params("SELECT pg_advisory_lock(hashtextextended($1, 0))",
                        std::string(lock_name));
    // Created only when missing: a role that may read the table but not
    // create in the schema (a service started after a one-shot migration
    // step) finds the schema current and changes nothing.
    if (session.exec("SELECT to_regclass('schema_migrations') IS NULL")[0][0]
            .as<bool>()) {
      session.exec(
          "CREATE TABLE schema_migrations ("
          " version integer PRIMARY KEY,"
          " name text NOT NULL,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
    }
    pqxx::result r =
        session.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
    applied = r[0][0].as<int>();
    session.commit();
    if (applied > newest_known) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", where, " has schema version ", applied,
                       ", newer than this build knows (", newest_known,
                       "): upgrade this binary"));
    }
    for (const Migration& m : migrations) {
      if (m.version <= applied) continue;
      current_step = m.version;
      pqxx::work tx(conn);
      tx.exec(m.sql);
      tx.exec_params(
          "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
          m.version, std::string(m.name));
      tx.commit();
    }
    pqxx::nontransaction unlock(conn);
    unlock.exec_params("SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                       std::string(lock_name));
  } catch (const std::exception& e) {
    if (SqlState(e) == "42501") {  // insufficient_privilege
      return absl::FailedPreconditionError(absl::StrCat(
          "database ", where, " has schema version ", applied,
          ", this build needs ", newest_known,
          ", and this role may not migrate it: apply the migrations as the "
          "schema's owner first"));
    }
    absl::Status s = StatusFromException(
        e, current_step == 0 ? absl::StrCat("migrating ", where)
                             : absl::StrCat("applying migration ", current_step,
                                            " to ", where));
    if (s.code() == absl::StatusCode::kUnavailable) return s;
    return absl::InternalError(s.message());
  }
  return absl::OkStatus();
}

}  // namespace bank::db
