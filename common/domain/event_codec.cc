#include "common/domain/event_codec.h"

#include <utility>

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

template <typename M>
absl::StatusOr<AccountEvent> Parse(absl::string_view type,
                                   absl::string_view json) {
  M m;
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

absl::StatusOr<AccountEvent> DecodeEvent(absl::string_view type,
                                         int schema_version,
                                         absl::string_view json) {
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
    return Parse<ev::AccountOpened>(type, data);
  }
  if (type == "MoneyDeposited") return Parse<ev::MoneyDeposited>(type, data);
  if (type == "MoneyWithdrawn") return Parse<ev::MoneyWithdrawn>(type, data);
  if (type == "TransferSent") return Parse<ev::TransferSent>(type, data);
  if (type == "TransferReceived") {
    return Parse<ev::TransferReceived>(type, data);
  }
  return Parse<ev::AccountClosed>(type, data);
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
