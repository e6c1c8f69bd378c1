#ifndef BANK_CLI_CLIENT_H_
#define BANK_CLI_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "google/protobuf/message.h"

namespace bank::cli {

// bankctl's global options.
struct Options {
  std::string command_host = "localhost:50051";
  std::string query_host = "localhost:50052";
  bool json = false;
  double timeout = 10;
  bool no_wait = false;
  // TLS: the CA to trust (turns TLS on), and a client certificate and key
  // for servers that require one.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// An error for the user: what failed and the status, printed on stderr.
struct Failure {
  std::string text;
};

// The channel credentials `o` asks for (TLS or plain text).
std::shared_ptr<grpc::ChannelCredentials> Credentials(const Options& o);

// The name of a status code, e.g. "NOT_FOUND".
const char* CodeName(grpc::StatusCode c);

// Throws a Failure for a status that is not OK. With `currency`, the
// amounts in the message are shown as its decimals.
void Check(const grpc::Status& s, const std::string& what,
           absl::string_view currency = "");

// The protobuf JSON mapping of `m`, field names as in the .proto.
std::string ToJson(const google::protobuf::Message& m);

// One history entry on one line: time, version, kind, amount, balance.
std::string EntryLine(const v1::HistoryEntry& h, const std::string& currency);

// Stubs for both services, made on first use.
class Client {
 public:
  explicit Client(const Options& o) : o_(o) {}

  v1::CommandService::Stub& commands();
  v1::QueryService::Stub& queries();
  // A context with the --timeout deadline.
  std::unique_ptr<grpc::ClientContext> Context() const;
  v1::AccountBalance Balance(const std::string& id, int64_t min_version,
                             const std::optional<absl::Time>& as_of);
  // The currency of an account (waits until its opening is projected).
  std::string CurrencyOf(const std::string& id);

  const Options& options() const { return o_; }

 private:
  const Options& o_;
  std::unique_ptr<v1::CommandService::Stub> commands_;
  std::unique_ptr<v1::QueryService::Stub> queries_;
};

}  // namespace bank::cli

#endif  // BANK_CLI_CLIENT_H_
