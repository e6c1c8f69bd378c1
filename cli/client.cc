#include "cli/client.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "cli/money_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace bank::cli {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> Credentials(const Options& o) {
  if (o.tls_ca.empty() && o.tls_cert.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca.empty()) ssl.pem_root_certs = ReadFile(o.tls_ca);
  if (!o.tls_cert.empty()) {
    ssl.pem_cert_chain = ReadFile(o.tls_cert);
    ssl.pem_private_key = ReadFile(o.tls_key);
  }
  return grpc::SslCredentials(ssl);
}

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::UNKNOWN:
      return "UNKNOWN";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::INTERNAL:
      return "INTERNAL";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

void Check(const grpc::Status& s, const std::string& what,
           absl::string_view currency) {
  if (!s.ok()) {
    throw Failure{absl::StrCat(
        what, ": ", CodeName(s.error_code()), ": ",
        currency.empty()
            ? s.error_message()
            : AmountsAsDecimals(s.error_message(), currency))};
  }
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string EntryLine(const v1::HistoryEntry& h, const std::string& currency) {
  std::string line = absl::StrCat(
      google::protobuf::util::TimeUtil::ToString(h.occurred_at()), "  v",
      h.version(), "  ", v1::EntryKind_Name(h.kind()).substr(11), "  ",
      FormatAmount(h.amount(), currency), "  -> ",
      FormatAmount(h.balance_after(), currency), " ", currency);
  if (!h.counterparty_account_id().empty()) {
    absl::StrAppend(&line, "  (", h.counterparty_account_id(), ")");
  }
  return line;
}

v1::CommandService::Stub& Client::commands() {
  if (!commands_) {
    commands_ = v1::CommandService::NewStub(
        grpc::CreateChannel(o_.command_host, Credentials(o_)));
  }
  return *commands_;
}

v1::QueryService::Stub& Client::queries() {
  if (!queries_) {
    queries_ = v1::QueryService::NewStub(
        grpc::CreateChannel(o_.query_host, Credentials(o_)));
  }
  return *queries_;
}

std::unique_ptr<grpc::ClientContext> Client::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(o_.timeout * 1000)));
  return ctx;
}

v1::AccountBalance Client::Balance(const std::string& id, int64_t min_version,
                                   const std::optional<absl::Time>& as_of) {
  v1::GetBalanceRequest req;
  req.set_account_id(id);
  req.set_min_version(min_version);
  if (as_of) {
    req.mutable_as_of()->set_seconds(absl::ToUnixSeconds(*as_of));
    req.mutable_as_of()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(
        *as_of - absl::FromUnixSeconds(absl::ToUnixSeconds(*as_of)))));
  }
  v1::AccountBalance b;
  auto ctx = Context();
  Check(queries().GetBalance(ctx.get(), req, &b), "balance");
  return b;
}

std::string Client::CurrencyOf(const std::string& id) {
  return Balance(id, 1, std::nullopt).currency();
}

}  // namespace bank::cli
