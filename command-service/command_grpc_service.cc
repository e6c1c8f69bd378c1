#include "command-service/command_grpc_service.h"

#include "bank/internal/v1/wire.pb.h"

namespace bank::command {

template <typename Wire, typename Req, typename Resp>
void CommandGrpcService::Add(
    const char* name,
    void (CommandRpcs::*method)(const grpc::ServerContextBase&,
                                std::shared_ptr<const Req>, Resp*,
                                CommandRpcs::Finish)) {
  AddRawUnary<Wire, Req, Resp>(
      name,
      [this, method](grpc::CallbackServerContext* ctx,
                     std::shared_ptr<const Req> req, Resp* resp,
                     grpc::ServerUnaryReactor* reactor) {
        // Here, on gRPC's thread, a command runs only while it need not
        // wait (its accounts cached and free); CommandHandler moves it to
        // its pool otherwise, and the answer comes from the thread that
        // commits it.
        (rpcs_.*method)(*ctx, std::move(req), resp,
                        [reactor](grpc::Status s) { reactor->Finish(s); });
      },
      [](const grpc::Status& s, grpc::ServerUnaryReactor* reactor) {
        reactor->Finish(s);
      });
}

CommandGrpcService::CommandGrpcService(CommandRpcs& rpcs) : rpcs_(rpcs) {
  using namespace bank::internal::v1;
  Add<OpenAccountRequestWire>("/bank.v1.CommandService/OpenAccount",
                              &CommandRpcs::OpenAccountAsync);
  Add<DepositRequestWire>("/bank.v1.CommandService/Deposit",
                          &CommandRpcs::DepositAsync);
  Add<WithdrawRequestWire>("/bank.v1.CommandService/Withdraw",
                           &CommandRpcs::WithdrawAsync);
  Add<TransferRequestWire>("/bank.v1.CommandService/Transfer",
                           &CommandRpcs::TransferAsync);
  Add<CloseAccountRequestWire>("/bank.v1.CommandService/CloseAccount",
                               &CommandRpcs::CloseAccountAsync);
}

}  // namespace bank::command
