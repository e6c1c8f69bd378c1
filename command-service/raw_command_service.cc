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
    grpc::Status (CommandServiceImpl::*method)(const grpc::ServerContextBase&,
                                               const Req&, Resp*)) {
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
            if (!pool_.TrySubmit([this, method, ctx, req, resp, reactor] {
                  reactor->Finish((impl_.*method)(*ctx, *req, resp));
                })) {
              reactor->Finish(grpc::Status(
                  grpc::StatusCode::RESOURCE_EXHAUSTED,
                  "command service overloaded (work queue full); retry with "
                  "backoff"));
            }
            return reactor;
          }));
}

RawCommandService::RawCommandService(CommandServiceImpl& impl,
                                     util::WorkerPool& pool)
    : impl_(impl), pool_(pool) {
  using namespace bank::internal::v1;
  // The order and names of the generated service, so clients and reflection
  // see bank.v1.CommandService.
  Add<OpenAccountRequestWire>("/bank.v1.CommandService/OpenAccount",
                              &CommandServiceImpl::OpenAccount);
  Add<DepositRequestWire>("/bank.v1.CommandService/Deposit",
                          &CommandServiceImpl::Deposit);
  Add<WithdrawRequestWire>("/bank.v1.CommandService/Withdraw",
                           &CommandServiceImpl::Withdraw);
  Add<TransferRequestWire>("/bank.v1.CommandService/Transfer",
                           &CommandServiceImpl::Transfer);
  Add<CloseAccountRequestWire>("/bank.v1.CommandService/CloseAccount",
                               &CommandServiceImpl::CloseAccount);
}

}  // namespace bank::command
