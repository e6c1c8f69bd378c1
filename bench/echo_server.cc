// bank-echo-server: the bare-gRPC baseline. Serves bank.v1.QueryService's
// GetBalance from memory (a fixed answer, no database) with the same gRPC,
// the same server code and settings as query-service, so a benchmark of it
// measures what gRPC itself costs on this machine.
#include <string>

#include "CLI/CLI.hpp"
#include "bank/v1/bank.grpc.pb.h"
#include "common/grpc/server.h"
#include "common/util/signals.h"

namespace {

class EchoQueryService final : public bank::v1::QueryService::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetBalance(
      grpc::CallbackServerContext* ctx, const bank::v1::GetBalanceRequest* req,
      bank::v1::AccountBalance* resp) override {
    resp->set_account_id(req->account_id());
    resp->set_owner("Echo");
    resp->set_currency("EUR");
    resp->set_balance(100);
    resp->set_version(1);
    resp->set_status(bank::v1::ACCOUNT_STATUS_OPEN);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

}  // namespace

int main(int argc, char** argv) {
  bank::util::BlockTerminationSignals();
  std::string listen = "127.0.0.1:50060";
  CLI::App app{"bank-echo-server: bare gRPC baseline"};
  app.add_option("--listen", listen)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  EchoQueryService service;
  auto server = bank::grpcutil::Server::Start({.listen = listen}, {&service});
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  bank::util::WaitForTerminationSignal();
  (*server)->Shutdown(absl::Seconds(1));
  (*server)->Wait();
  return 0;
}
