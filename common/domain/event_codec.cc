#include "common/domain/event_codec.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace bank::domain {
namespace {

namespace ev = bank::events::v1;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

std::string ToJson(const google::protobuf::Message& m) {
  JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  // Printing a well-formed message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// The fast path of decoding: a flat JSON object whose keys are proto field
// names and whose values are strings of printable ASCII without escapes,
// integers (bare or quoted, as the JSON mapping writes int64) or booleans.
// That is every event this service writes, as PostgreSQL's jsonb prints it.
// Anything else (escapes, non-ASCII, json_name keys, floats, null, nesting,
// repeated keys, unknown keys) returns false and the full protobuf JSON
// parser decides, so both paths give the same result on what this one
// accepts (checked by the fuzz target and event_codec_test).
bool ParsePlainJson(absl::string_view s, google::protobuf::Message& m) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  const google::protobuf::Reflection* r = m.GetReflection();
  size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && IsJsonSpace(s[i])) ++i;
  };
  auto eat = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  // A string without escapes or non-ASCII bytes: its contents.
  auto plain_string = [&](absl::string_view& out) {
    if (!eat('"')) return false;
    const size_t begin = i;
    while (i < s.size() && s[i] != '"') {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      ++i;
    }
    if (i >= s.size()) return false;
    out = s.substr(begin, i - begin);
    ++i;
    return true;
  };
  // -?(0|[1-9][0-9]*) within int64.
  auto integer = [](absl::string_view digits, int64_t& out) {
    size_t j = !digits.empty() && digits[0] == '-' ? 1 : 0;
    if (j >= digits.size()) return false;
    if (digits[j] == '0' && j + 1 != digits.size()) return false;
    for (size_t k = j; k < digits.size(); ++k) {
      if (digits[k] < '0' || digits[k] > '9') return false;
    }
    return absl::SimpleAtoi(digits, &out);
  };
  uint64_t seen = 0;
  skip();
  if (!eat('{')) return false;
  skip();
  if (!eat('}')) {
    while (true) {
      absl::string_view key;
      if (!plain_string(key)) return false;
      const google::protobuf::FieldDescriptor* f =
          d->FindFieldByName(std::string(key));
      if (f == nullptr || f->is_repeated() || f->index() >= 64 ||
          f->containing_oneof() != nullptr) {
        return false;
      }
      if (seen & (uint64_t{1} << f->index())) return false;
      seen |= uint64_t{1} << f->index();
      skip();
      if (!eat(':')) return false;
      skip();
      switch (f->type()) {
        case google::protobuf::FieldDescriptor::TYPE_STRING: {
          absl::string_view v;
          if (!plain_string(v)) return false;
          r->SetString(&m, f, std::string(v));
          break;
        }
        case google::protobuf::FieldDescriptor::TYPE_INT64: {
          absl::string_view v;
          if (i < s.size() && s[i] == '"') {
            if (!plain_string(v)) return false;
          } else {
            const size_t begin = i;
            while (i < s.size() &&
                   (s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))) {
              ++i;
            }
            v = s.substr(begin, i - begin);
          }
          int64_t n = 0;
          if (!integer(v, n)) return false;
          r->SetInt64(&m, f, n);
          break;
        }
        case google::protobuf::FieldDescriptor::TYPE_BOOL:
          if (s.substr(i, 4) == "true") {
            i += 4;
            r->SetBool(&m, f, true);
          } else if (s.substr(i, 5) == "false") {
            i += 5;
            r->SetBool(&m, f, false);
          } else {
            return false;
          }
          break;
        default:
          return false;
      }
      skip();
      if (eat('}')) break;
      if (!eat(',')) return false;
      skip();
    }
  }
  skip();
  return i == s.size();
}

template <typename M>
absl::StatusOr<AccountEvent> Parse(absl::string_view type,
                                   absl::string_view json, bool fast_path) {
  M m;
  if (fast_path && ParsePlainJson(json, m)) return AccountEvent(std::move(m));
  m.Clear();
  JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st =
      google::protobuf::util::JsonStringToMessage(std::string(json), &m, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse ", type, " data: ", st.message().as_string()));
  }
  return AccountEvent(std::move(m));
}

// AccountOpened schema 1 named the owner "holder"; schema 2 calls it "owner".
absl::StatusOr<std::string> UpcastAccountOpenedV1(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        "AccountOpened v1 data is not a JSON object");
  }
  if (auto it = doc.find("holder"); it != doc.end()) {
    doc["owner"] = *it;
    doc.erase("holder");
  }
  return doc.dump();
}

}  // namespace

int CurrentSchemaVersion(absl::string_view type) {
  if (type == "AccountOpened") return 2;
  if (type == "MoneyDeposited" || type == "MoneyWithdrawn" ||
      type == "TransferSent" || type == "TransferReceived" ||
      type == "AccountClosed") {
    return 1;
  }
  return 0;
}

EncodedEvent EncodeEvent(const AccountEvent& event) {
  EncodedEvent out;
  out.type = EventTypeName(event);
  out.schema_version = CurrentSchemaVersion(out.type);
  out.json = std::visit([](const auto& e) { return ToJson(e); }, event);
  return out;
}

namespace {

absl::StatusOr<AccountEvent> Decode(absl::string_view type, int schema_version,
                                    absl::string_view json, bool fast_path) {
  const int current = CurrentSchemaVersion(type);
  if (current == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown event type \"", type, "\""));
  }
  if (schema_version < 1 || schema_version > current) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown schema version ", schema_version, " of ", type,
                     " (this build reads 1 to ", current, ")"));
  }
  std::string data(json);
  if (type == "AccountOpened") {
    if (schema_version == 1) {
      absl::StatusOr<std::string> up = UpcastAccountOpenedV1(data);
      if (!up.ok()) return up.status();
      data = *std::move(up);
    }
    return Parse<ev::AccountOpened>(type, data, fast_path);
  }
  if (type == "MoneyDeposited")
    return Parse<ev::MoneyDeposited>(type, data, fast_path);
  if (type == "MoneyWithdrawn")
    return Parse<ev::MoneyWithdrawn>(type, data, fast_path);
  if (type == "TransferSent")
    return Parse<ev::TransferSent>(type, data, fast_path);
  if (type == "TransferReceived") {
    return Parse<ev::TransferReceived>(type, data, fast_path);
  }
  return Parse<ev::AccountClosed>(type, data, fast_path);
}

}  // namespace

absl::StatusOr<AccountEvent> DecodeEvent(absl::string_view type,
                                         int schema_version,
                                         absl::string_view json) {
  return Decode(type, schema_version, json, /*fast_path=*/true);
}

absl::StatusOr<AccountEvent> DecodeEventWithoutFastPathForTesting(
    absl::string_view type, int schema_version, absl::string_view json) {
  return Decode(type, schema_version, json, /*fast_path=*/false);
}

std::string EncodeSnapshot(const AccountState& state) {
  ev::AccountSnapshot s;
  s.set_account_id(state.id);
  s.set_owner(state.owner);
  s.set_currency(state.currency);
  s.set_balance(state.balance);
  s.set_version(state.version);
  s.set_closed(state.status == AccountStatus::kClosed);
  return ToJson(s);
}

absl::StatusOr<AccountState> DecodeSnapshot(int schema_version,
                                            absl::string_view json) {
  if (schema_version != kSnapshotSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot schema version ", schema_version,
                     " is not the current ", kSnapshotSchemaVersion));
  }
  ev::AccountSnapshot s;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), &s);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse snapshot: ", st.message().as_string()));
  }
  if (s.version() < 1) {
    return absl::InvalidArgumentError("snapshot has no version");
  }
  // No command can leave a negative balance: such a snapshot is corrupt, and
  // is ignored (the account is replayed from its events).
  if (s.balance() < 0) {
    return absl::InvalidArgumentError("snapshot has a negative balance");
  }
  AccountState out;
  out.id = s.account_id();
  out.owner = s.owner();
  out.currency = s.currency();
  out.balance = s.balance();
  out.version = s.version();
  out.status = s.closed() ? AccountStatus::kClosed : AccountStatus::kOpen;
  return out;
}

}  // namespace bank::domain
