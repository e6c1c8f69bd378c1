#include "common/db/binary_copy.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <pqxx/except>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bank::db {
namespace {

// COPY's binary format: signature, flags, header extension length.
constexpr char kHeader[] = "PGCOPY\n\377\r\n\0";
constexpr size_t kHeaderSignature = 11;
constexpr size_t kFlushAt = 1 << 16;
// timestamptz counts microseconds from 2000-01-01 00:00:00 UTC.
constexpr int64_t kPostgresEpochUnixMicros = 946684800LL * 1000000;

// A template, so the loop unrolls for each size (a bulk load calls these
// for every field of every row).
template <int kBytes>
void PutBigEndian(std::string& out, uint64_t v) {
  char b[kBytes];
  for (int i = kBytes - 1; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out.append(b, kBytes);
}
void PutBigEndian16(std::string& out, uint16_t v) { PutBigEndian<2>(out, v); }
void PutBigEndian32(std::string& out, uint32_t v) { PutBigEndian<4>(out, v); }
void PutBigEndian64(std::string& out, uint64_t v) { PutBigEndian<8>(out, v); }

// Each byte's hex digit value, or -1: a table, not branches, because every
// row of a rebuild's history has a uuid to parse.
constexpr std::array<int8_t, 256> kHexValues = [] {
  std::array<int8_t, 256> t{};
  for (int8_t& v : t) v = -1;
  for (int c = 0; c < 10; ++c) t['0' + c] = static_cast<int8_t>(c);
  for (int c = 0; c < 6; ++c) {
    t['a' + c] = static_cast<int8_t>(10 + c);
    t['A' + c] = static_cast<int8_t>(10 + c);
  }
  return t;
}();

// Where each of a uuid's 16 bytes starts in its 8-4-4-4-12 text.
constexpr uint8_t kUuidDigitsAt[16] = {0,  2,  4,  6,  9,  11, 14, 16,
                                       19, 21, 24, 26, 28, 30, 32, 34};

}  // namespace

BinaryCopyIn::BinaryCopyIn(const std::string& uri, const std::string& copy_sql,
                           const std::string& application_name,
                           const std::vector<std::string>& before) {
  const char* keys[] = {"dbname", "application_name", nullptr};
  const char* values[] = {uri.c_str(), application_name.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string message =
        conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    throw pqxx::broken_connection(message);
  }
  if (!before.empty()) {
    Exec("BEGIN");
    in_transaction_ = true;
    for (const std::string& sql : before) Exec(sql);
  }
  PGresult* r = PQexec(conn_, copy_sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_IN) Fail(copy_sql, r);
  PQclear(r);
  buffer_.reserve(kFlushAt + 1024);
  buffer_.append(kHeader, kHeaderSignature);
  PutBigEndian32(buffer_, 0);  // flags
  PutBigEndian32(buffer_, 0);  // header extension length
}

BinaryCopyIn::~BinaryCopyIn() {
  // Closing the connection mid-COPY aborts it: nothing is committed.
  if (conn_ != nullptr) PQfinish(conn_);
}

void BinaryCopyIn::Exec(const std::string& sql) {
  CheckCommandOk(PQexec(conn_, sql.c_str()), sql);
}

void BinaryCopyIn::CheckCommandOk(PGresult* r, const std::string& what) {
  if (PQresultStatus(r) == PGRES_COMMAND_OK) {
    PQclear(r);
    return;
  }
  Fail(what, r);
}

void BinaryCopyIn::Fail(const std::string& what, PGresult* first) {
  std::string message = PQerrorMessage(conn_);
  std::string sqlstate;
  PGresult* r = first != nullptr ? first : PQgetResult(conn_);
  while (r != nullptr) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) sqlstate = s;
    if (const char* m = PQresultErrorMessage(r); m != nullptr && *m) {
      message = m;
    }
    PQclear(r);
    r = PQgetResult(conn_);
  }
  const bool broken = PQstatus(conn_) != CONNECTION_OK;
  PQfinish(conn_);
  conn_ = nullptr;
  if (broken) throw pqxx::broken_connection(message);
  throw pqxx::sql_error(message, what,
                        sqlstate.empty() ? nullptr : sqlstate.c_str());
}

void BinaryCopyIn::Flush() {
  if (conn_ == nullptr) throw pqxx::usage_error("COPY already ended");
  if (buffer_.empty()) return;
  if (PQputCopyData(conn_, buffer_.data(), static_cast<int>(buffer_.size())) !=
      1) {
    Fail("COPY data");
  }
  buffer_.clear();
}

void BinaryCopyIn::StartRow(int16_t columns) {
  if (buffer_.size() >= kFlushAt) Flush();
  PutBigEndian16(buffer_, static_cast<uint16_t>(columns));
  ++rows_;
}

void BinaryCopyIn::AddInt16(int16_t v) {
  PutBigEndian32(buffer_, 2);
  PutBigEndian16(buffer_, static_cast<uint16_t>(v));
}

void BinaryCopyIn::AddInt64(int64_t v) {
  // Length and value in one append.
  char b[12] = {0, 0, 0, 8};
  uint64_t u = static_cast<uint64_t>(v);
  for (int i = 11; i >= 4; --i) {
    b[i] = static_cast<char>(u & 0xFF);
    u >>= 8;
  }
  buffer_.append(b, sizeof(b));
}

void BinaryCopyIn::AddUuid(absl::string_view v) {
  // 8-4-4-4-12 hex digits; the field is its length (16) and the 16 bytes.
  char b[20] = {0, 0, 0, 16};
  bool ok = v.size() == 36 && v[8] == '-' && v[13] == '-' && v[18] == '-' &&
            v[23] == '-';
  if (ok) {
    int bad = 0;  // Negative once any digit is not one.
    for (int i = 0; i < 16; ++i) {
      const int hi = kHexValues[static_cast<uint8_t>(v[kUuidDigitsAt[i]])];
      const int lo = kHexValues[static_cast<uint8_t>(v[kUuidDigitsAt[i] + 1])];
      bad |= hi | lo;
      b[4 + i] = static_cast<char>((hi & 0xF) << 4 | (lo & 0xF));
    }
    ok = bad >= 0;
  }
  if (!ok) {
    throw pqxx::data_exception(
        absl::StrCat("invalid input syntax for type uuid: \"", v, "\""), "",
        "22P02");
  }
  buffer_.append(b, sizeof(b));
}

void BinaryCopyIn::AddTimestamp(absl::Time t) {
  AddInt64(absl::ToUnixMicros(t) - kPostgresEpochUnixMicros);
}

void BinaryCopyIn::AddNull() { PutBigEndian32(buffer_, 0xFFFFFFFFu); }

int64_t BinaryCopyIn::Finish() {
  PutBigEndian16(buffer_, 0xFFFF);  // trailer
  Flush();
  if (PQputCopyEnd(conn_, nullptr) != 1) Fail("COPY end");
  CheckCommandOk(PQgetResult(conn_), "COPY");
  PGresult* r;
  while ((r = PQgetResult(conn_)) != nullptr) PQclear(r);
  if (in_transaction_) Exec("COMMIT");
  PQfinish(conn_);
  conn_ = nullptr;
  return rows_;
}

BinaryCopyOut::BinaryCopyOut(std::string uri, std::string application_name)
    : uri_(std::move(uri)), application_name_(std::move(application_name)) {}

BinaryCopyOut::~BinaryCopyOut() { Drop(); }

void BinaryCopyOut::Drop() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

void BinaryCopyOut::Connect() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return;
  Drop();
  const char* keys[] = {"dbname", "application_name", nullptr};
  const char* values[] = {uri_.c_str(), application_name_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string message =
        conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    Drop();
    throw pqxx::broken_connection(message);
  }
}

void BinaryCopyOut::Run(
    const std::string& copy_sql,
    const std::function<void(const std::vector<Field>&)>& on_row) {
  Connect();
  // The statement's result: the COPY starting, then, after the data, its
  // outcome. An error drops the connection (it may be mid-COPY).
  auto fail = [this, &copy_sql](PGresult* r) {
    std::string message = r != nullptr ? PQresultErrorMessage(r) : "";
    if (message.empty()) message = PQerrorMessage(conn_);
    std::string sqlstate;
    if (r != nullptr) {
      if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) sqlstate = s;
      PQclear(r);
    }
    const bool broken = PQstatus(conn_) != CONNECTION_OK;
    Drop();
    if (broken) throw pqxx::broken_connection(message);
    throw pqxx::sql_error(message, copy_sql,
                          sqlstate.empty() ? nullptr : sqlstate.c_str());
  };
  PGresult* r = PQexec(conn_, copy_sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_OUT) fail(r);
  PQclear(r);
  data_.clear();
  while (true) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn_, &buf, /*async=*/0);
    if (n == -1) break;  // done
    if (n == -2) fail(nullptr);
    data_.append(buf, static_cast<size_t>(n));
    PQfreemem(buf);
  }
  r = PQgetResult(conn_);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fail(r);
  PQclear(r);
  while ((r = PQgetResult(conn_)) != nullptr) PQclear(r);
  // Header: signature, flags, extension (skipped); then rows, then -1.
  size_t at = 0;
  auto take = [this, &at, &copy_sql](size_t n) {
    if (data_.size() - at < n) {
      throw pqxx::data_exception("truncated binary COPY data", copy_sql);
    }
    absl::string_view out(data_.data() + at, n);
    at += n;
    return out;
  };
  auto be = [](absl::string_view b) {
    uint64_t v = 0;
    for (char c : b) v = v << 8 | static_cast<unsigned char>(c);
    return v;
  };
  if (take(kHeaderSignature) != absl::string_view(kHeader, kHeaderSignature)) {
    throw pqxx::data_exception("not binary COPY data", copy_sql);
  }
  take(4);
  take(static_cast<size_t>(be(take(4))));
  std::vector<Field> fields;
  while (true) {
    const int16_t n = static_cast<int16_t>(be(take(2)));
    if (n == -1) break;
    fields.assign(static_cast<size_t>(std::max<int16_t>(n, 0)), Field{});
    for (Field& f : fields) {
      const int32_t len = static_cast<int32_t>(be(take(4)));
      if (len < 0) {
        f.null = true;
      } else {
        f.bytes = take(static_cast<size_t>(len));
      }
    }
    on_row(fields);
  }
}

namespace {

template <size_t kSize>
uint64_t BigEndian(const BinaryCopyOut::Field& f) {
  if (f.null || f.bytes.size() != kSize) {
    throw pqxx::data_exception(absl::StrCat(
        "binary COPY field of ", f.bytes.size(), " bytes, expected ", kSize));
  }
  uint64_t v = 0;
  for (size_t i = 0; i < kSize; ++i) {
    v = v << 8 | static_cast<unsigned char>(f.bytes[i]);
  }
  return v;
}

}  // namespace

int16_t BinaryCopyOut::Int16(const Field& f) {
  return static_cast<int16_t>(BigEndian<2>(f));
}
int32_t BinaryCopyOut::Int32(const Field& f) {
  return static_cast<int32_t>(BigEndian<4>(f));
}
int64_t BinaryCopyOut::Int64(const Field& f) {
  return static_cast<int64_t>(BigEndian<8>(f));
}

std::string BinaryCopyOut::UuidText(const Field& f) {
  if (f.null || f.bytes.size() != 16) {
    throw pqxx::data_exception("binary uuid is not 16 bytes");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  char out[36];
  int n = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[n++] = '-';
    const unsigned char c = static_cast<unsigned char>(f.bytes[i]);
    out[n++] = kHex[c >> 4];
    out[n++] = kHex[c & 0xF];
  }
  return std::string(out, sizeof(out));
}

absl::Time BinaryCopyOut::Timestamp(const Field& f) {
  return absl::FromUnixMicros(Int64(f) + kPostgresEpochUnixMicros);
}

absl::string_view BinaryCopyOut::JsonbText(const Field& f) {
  // jsonb's send format: a version byte (1), then the JSON text.
  if (f.null || f.bytes.empty() || f.bytes[0] != 1) {
    throw pqxx::data_exception("unknown binary jsonb format");
  }
  return f.bytes.substr(1);
}

}  // namespace bank::db
