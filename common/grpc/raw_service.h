#ifndef BANK_COMMON_GRPC_RAW_SERVICE_H_
#define BANK_COMMON_GRPC_RAW_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_service_method.h>
#include <grpcpp/impl/codegen/server_callback_handlers.h>
#include <grpcpp/impl/codegen/service_type.h>

#include <functional>
#include <memory>

#include "common/grpc/raw_request.h"

namespace bank::grpcutil {

// A service whose unary methods are registered on gRPC's callback API and
// receive the request's raw bytes, decoded through a wire view whose text
// fields are bytes (DecodeRequest, raw_request.h), so text that is not valid
// UTF-8 is refused with INVALID_ARGUMENT naming the field. Both servers
// register their methods this one way, in the order and under the names of
// the generated service, so clients and reflection see the real service.
class RawService : public grpc::Service {
 public:
  template <typename Req, typename Resp>
  using Handler = std::function<void(grpc::CallbackServerContext*,
                                     std::shared_ptr<const Req>, Resp*,
                                     grpc::ServerUnaryReactor*)>;
  using Refusal =
      std::function<void(const grpc::Status&, grpc::ServerUnaryReactor*)>;
  template <typename Req, typename Resp>
  using StreamHandler = std::function<grpc::ServerWriteReactor<Resp>*(
      grpc::CallbackServerContext*, const Req&)>;
  // A stream refused before it started: finished with the status at once.
  template <typename Resp>
  using StreamRefusal =
      std::function<grpc::ServerWriteReactor<Resp>*(const grpc::Status&)>;
  // A bidirectional stream's reactor: it decodes each request itself
  // (DecodeRequest, through the request's wire view).
  template <typename Resp>
  using BidiHandler =
      std::function<grpc::ServerBidiReactor<grpc::ByteBuffer, Resp>*(
          grpc::CallbackServerContext*)>;

 protected:
  // Adds the method `name` ("/pkg.Service/Method"): its request is decoded
  // through Wire into a Req that lives until gRPC is done with the call,
  // then handed to `handle`, which must finish the reactor; a request that
  // does not decode goes to `refuse` instead.
  template <typename Wire, typename Req, typename Resp>
  void AddRawUnary(const char* name, Handler<Req, Resp> handle,
                   Refusal refuse) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodCallback(
        methods_added_++,
        new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, Resp>(
            [handle = std::move(handle), refuse = std::move(refuse)](
                grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw,
                Resp* resp) -> grpc::ServerUnaryReactor* {
              auto* call = new Call<Req>();
              Wire wire;
              grpc::Status s = DecodeRequest(*raw, wire, *call->request);
              if (!s.ok()) {
                refuse(s, call);
              } else {
                handle(ctx, call->request, resp, call);
              }
              return call;
            }));
  }

  // Adds the server-streaming method `name` the same way: its decoded
  // request goes to `start`, which returns the stream's reactor; one that
  // does not decode goes to `refuse`.
  template <typename Wire, typename Req, typename Resp>
  void AddRawServerStreaming(const char* name, StreamHandler<Req, Resp> start,
                             StreamRefusal<Resp> refuse) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::SERVER_STREAMING, nullptr));
    MarkMethodCallback(
        methods_added_++,
        new grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer,
                                                           Resp>(
            [start = std::move(start), refuse = std::move(refuse)](
                grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw)
                -> grpc::ServerWriteReactor<Resp>* {
              Wire wire;
              Req req;
              grpc::Status s = DecodeRequest(*raw, wire, req);
              return s.ok() ? start(ctx, req) : refuse(s);
            }));
  }

  // Adds the bidirectional method `name`: `start` returns its reactor,
  // which reads the requests' raw bytes.
  template <typename Resp>
  void AddRawBidiStreaming(const char* name, BidiHandler<Resp> start) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::BIDI_STREAMING, nullptr));
    MarkMethodCallback(
        methods_added_++,
        new grpc::internal::CallbackBidiHandler<grpc::ByteBuffer, Resp>(
            std::move(start)));
  }

 private:
  // One call: its decoded request, kept until gRPC is done with the call.
  template <typename Req>
  class Call final : public grpc::ServerUnaryReactor {
   public:
    std::shared_ptr<Req> request = std::make_shared<Req>();

   private:
    void OnDone() override { delete this; }
  };

  int methods_added_ = 0;
};

}  // namespace bank::grpcutil

#endif  // BANK_COMMON_GRPC_RAW_SERVICE_H_
