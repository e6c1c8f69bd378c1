#include "command-service/raw_command_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "bank/internal/v1/wire.pb.h"
#include "common/util/text.h"

namespace bank::command {
namespace {

using grpc::internal::RpcMethod;
using grpc::internal::RpcServiceMethod;

// Decodes `raw` into Req through its wire view Wire. INVALID_ARGUMENT for
// bytes that are not a request, or text fields that are not UTF-8.
template <typename Wire, typename Req>
grpc::Status Decode(const grpc::ByteBuffer& raw, Req* req) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  Wire wire;
  if (!wire.ParseFromString(bytes)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request is not a valid protobuf message");
  }
  const google::protobuf::Descriptor* d = wire.GetDescriptor();
  const google::protobuf::Reflection* r = wire.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->type() != google::protobuf::FieldDescriptor::TYPE_BYTES) continue;
    if (!util::Utf8Length(r->GetString(wire, f)).has_value()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat(f->name(), " is not valid UTF-8"));
    }
  }
  // Same field numbers and wire types: the bytes are now a valid Req.
  if (!req->ParseFromString(bytes)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request cannot be decoded");
  }
  return grpc::Status::OK;
}

}  // namespace

template <typename Wire, typename Req, typename Resp>
void RawCommandService::Add(const char* name,
                            grpc::Status (CommandServiceImpl::*method)(
                                const grpc::ServerContextBase&, const Req&,
                                Resp*)) {
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
