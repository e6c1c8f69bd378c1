#include "command-service/raw_command_service.h"

#include "bank/internal/v1/wire.pb.h"
#include "common/grpc/raw_request.h"

namespace bank::command {
namespace {

using grpc::internal::RpcMethod;
using grpc::internal::RpcServiceMethod;

// Decodes `raw` into Req through its wire view Wire.
template <typename Wire, typename Req>
grpc::Status Decode(const grpc::ByteBuffer& raw, Req* req) {
  Wire wire;
  return grpcutil::DecodeRequest(raw, wire, *req);
}

}  // namespace

template <typename Wire, typename Req, typename Resp>
void RawCommandService::Add(
    const char* name,
    void (CommandServiceImpl::*method)(const grpc::ServerContextBase&,
                                       std::shared_ptr<const Req>, Resp*,
                                       CommandServiceImpl::Finish)) {
  AddMethod(new RpcServiceMethod(name, RpcMethod::NORMAL_RPC, nullptr));
  MarkMethodCallback(
      methods_added_++,
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, Resp>(
          [this, method](grpc::CallbackServerContext* ctx,
                         const grpc::ByteBuffer* raw,
                         Resp* resp) -> grpc::ServerUnaryReactor* {
            grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
            auto req = std::make_shared<Req>();
            grpc::Status s = Decode<Wire>(*raw, req.get());
            if (!s.ok()) {
              reactor->Finish(s);
              return reactor;
            }
            // Here, on gRPC's thread, a command runs only while it need not
            // wait (its accounts cached and free); CommandHandler moves it
            // to its pool otherwise, and the answer comes from the thread
            // that commits it.
            (impl_.*method)(*ctx, req, resp,
                            [reactor](grpc::Status s) { reactor->Finish(s); });
            return reactor;
          }));
}

RawCommandService::RawCommandService(CommandServiceImpl& impl) : impl_(impl) {
  using namespace bank::internal::v1;
  // The order and names of the generated service, so clients and reflection
  // see bank.v1.CommandService.
  Add<OpenAccountRequestWire>("/bank.v1.CommandService/OpenAccount",
                              &CommandServiceImpl::OpenAccountAsync);
  Add<DepositRequestWire>("/bank.v1.CommandService/Deposit",
                          &CommandServiceImpl::DepositAsync);
  Add<WithdrawRequestWire>("/bank.v1.CommandService/Withdraw",
                           &CommandServiceImpl::WithdrawAsync);
  Add<TransferRequestWire>("/bank.v1.CommandService/Transfer",
                           &CommandServiceImpl::TransferAsync);
  Add<CloseAccountRequestWire>("/bank.v1.CommandService/CloseAccount",
                               &CommandServiceImpl::CloseAccountAsync);
}

}  // namespace bank::command
