#ifndef BANK_COMMON_DB_BINARY_COPY_H_
#define BANK_COMMON_DB_BINARY_COPY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct pg_conn;
struct pg_result;

namespace bank::db {

// A bulk load with COPY ... FROM STDIN (FORMAT binary) on a connection of
// its own. libpqxx 6.4 only speaks COPY's text format, which PostgreSQL
// parses at about twice the cost (uuids and timestamps above all), so this
// goes through libpq. The COPY is one statement, hence one transaction:
// Finish() commits it; destroying the object before that rolls it back.
// Errors are thrown as libpqxx exceptions (pqxx::broken_connection,
// pqxx::sql_error with the SQLSTATE), so callers convert them with
// StatusFromException like any other database error. Not thread-safe.
class BinaryCopyIn {
 public:
  // Connects to `uri` and starts `copy_sql` ("COPY t (a, b) FROM STDIN
  // (FORMAT binary)"). With `before`, the COPY runs in a transaction that
  // runs those statements first (a TRUNCATE of the table lets the COPY load
  // it with FREEZE); Finish() commits it.
  BinaryCopyIn(const std::string& uri, const std::string& copy_sql,
               const std::string& application_name,
               const std::vector<std::string>& before = {});
  ~BinaryCopyIn();
  BinaryCopyIn(const BinaryCopyIn&) = delete;
  BinaryCopyIn& operator=(const BinaryCopyIn&) = delete;

  // A row is StartRow(n) and then exactly n values in column order.
  void StartRow(int16_t columns);
  void AddInt16(int16_t v);
  void AddInt64(int64_t v);
  // A UUID in its text form; throws pqxx::data_exception (SQLSTATE 22P02,
  // the code PostgreSQL gives bad uuid text) when v is not one.
  void AddUuid(absl::string_view v);
  // timestamptz, to the microsecond (finer digits are dropped). REQUIRES: t
  // finite.
  void AddTimestamp(absl::Time t);
  void AddNull();

  // Ends the COPY and commits it; returns the number of rows loaded.
  int64_t Finish();

 private:
  void Flush();
  // Drains the connection's results (from `first`, already taken, if
  // given), closes it and throws: broken_connection, or sql_error with the
  // SQLSTATE of the last error.
  [[noreturn]] void Fail(const std::string& what, pg_result* first = nullptr);
  // Runs a statement that returns no rows; throws as Fail does.
  void Exec(const std::string& sql);
  // Takes r: returns if it is a command's success, else Fail(what, r).
  void CheckCommandOk(pg_result* r, const std::string& what);

  pg_conn* conn_ = nullptr;
  std::string buffer_;
  int64_t rows_ = 0;
  bool in_transaction_ = false;  // Finish() commits.
};

// COPY (query) TO STDOUT (FORMAT binary) through libpq, on a connection of
// its own kept across statements: what the text format makes PostgreSQL
// print (uuids, timestamps, numbers as text) comes as raw bytes. Errors are
// thrown as libpqxx exceptions, as for BinaryCopyIn. Not thread-safe.
class BinaryCopyOut {
 public:
  BinaryCopyOut(std::string uri, std::string application_name);
  ~BinaryCopyOut();
  BinaryCopyOut(const BinaryCopyOut&) = delete;
  BinaryCopyOut& operator=(const BinaryCopyOut&) = delete;

  // One field of a row: its bytes, or null.
  struct Field {
    absl::string_view bytes;
    bool null = false;
  };
  // Runs `copy_sql` and calls on_row for each row with its fields (valid
  // during the call only). Connects first if needed; after an error the
  // connection is dropped and the next call reconnects.
  void Run(const std::string& copy_sql,
           const std::function<void(const std::vector<Field>&)>& on_row);

  // Values in PostgreSQL's binary send formats; throw pqxx::data_exception
  // on a size mismatch.
  static int16_t Int16(const Field& f);
  static int32_t Int32(const Field& f);
  static int64_t Int64(const Field& f);         // int8, xid8
  static std::string UuidText(const Field& f);  // lower case, 8-4-4-4-12
  static absl::Time Timestamp(const Field& f);  // timestamptz
  static absl::string_view JsonbText(const Field& f);

 private:
  void Connect();
  void Drop();
  const std::string uri_;
  const std::string application_name_;
  pg_conn* conn_ = nullptr;
  std::string data_;
};

}  // namespace bank::db

#endif  // BANK_COMMON_DB_BINARY_COPY_H_
