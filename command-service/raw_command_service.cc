#include "command-service/raw_command_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "bank/internal/v1/wire.pb.h"
#include "common/util/text.h"

namespace bank::command {
namespace {

using grpc::internal::RpcMethod;
using grpc::internal::RpcMethodHandler;
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

template <typename Wire, typename Req, typename Resp>
void Add(RawCommandService* self, const char* name,
         grpc::Status (CommandServiceImpl::*method)(grpc::ServerContext*,
                                                    const Req*, Resp*),
         CommandServiceImpl& impl,
         void (grpc::Service::*add)(RpcServiceMethod*)) {
  (self->*add)(new RpcServiceMethod(
      name, RpcMethod::NORMAL_RPC,
      new RpcMethodHandler<RawCommandService, grpc::ByteBuffer, Resp>(
          [&impl, method](RawCommandService*, grpc::ServerContext* ctx,
                          const grpc::ByteBuffer* raw, Resp* resp) {
            Req req;
            grpc::Status s = Decode<Wire>(*raw, &req);
            if (!s.ok()) return s;
            return (impl.*method)(ctx, &req, resp);
          },
          self)));
}

}  // namespace

RawCommandService::RawCommandService(CommandServiceImpl& impl) : impl_(impl) {
  using namespace bank::internal::v1;
  // The order and names of the generated service, so clients and reflection
  // see bank.v1.CommandService.
  auto add = &RawCommandService::AddMethod;
  Add<OpenAccountRequestWire>(this, "/bank.v1.CommandService/OpenAccount",
                              &CommandServiceImpl::OpenAccount, impl_, add);
  Add<DepositRequestWire>(this, "/bank.v1.CommandService/Deposit",
                          &CommandServiceImpl::Deposit, impl_, add);
  Add<WithdrawRequestWire>(this, "/bank.v1.CommandService/Withdraw",
                           &CommandServiceImpl::Withdraw, impl_, add);
  Add<TransferRequestWire>(this, "/bank.v1.CommandService/Transfer",
                           &CommandServiceImpl::Transfer, impl_, add);
  Add<CloseAccountRequestWire>(this, "/bank.v1.CommandService/CloseAccount",
                               &CommandServiceImpl::CloseAccount, impl_, add);
}

}  // namespace bank::command
