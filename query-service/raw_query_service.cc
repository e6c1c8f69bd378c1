#include "query-service/raw_query_service.h"

#include "bank/internal/v1/wire.pb.h"
#include "common/grpc/raw_request.h"

namespace bank::query {
namespace {

using grpc::internal::RpcMethod;
using grpc::internal::RpcServiceMethod;

// One call: its decoded request, kept until gRPC is done with the call.
template <typename Req>
class Call final : public grpc::ServerUnaryReactor {
 public:
  Req request;

 private:
  void OnDone() override { delete this; }
};

}  // namespace

template <typename Wire, typename Req, typename Resp>
void RawQueryService::Add(
    const char* name, QueryServiceImpl::Rpc rpc,
    void (QueryServiceImpl::*method)(grpc::CallbackServerContext*, const Req*,
                                     Resp*, grpc::ServerUnaryReactor*)) {
  AddMethod(new RpcServiceMethod(name, RpcMethod::NORMAL_RPC, nullptr));
  MarkMethodCallback(
      methods_added_++,
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, Resp>(
          [this, rpc, method](grpc::CallbackServerContext* ctx,
                              const grpc::ByteBuffer* raw,
                              Resp* resp) -> grpc::ServerUnaryReactor* {
            auto* call = new Call<Req>();
            Wire wire;
            grpc::Status s = grpcutil::DecodeRequest(*raw, wire, call->request);
            if (!s.ok()) {
              impl_.Refuse(rpc, s, call);
            } else {
              (impl_.*method)(ctx, &call->request, resp, call);
            }
            return call;
          }));
}

RawQueryService::RawQueryService(QueryServiceImpl& impl) : impl_(impl) {
  using namespace bank::internal::v1;
  using Rpc = QueryServiceImpl::Rpc;
  // The order and names of the generated service, so clients and reflection
  // see bank.v1.QueryService.
  Add<GetBalanceRequestWire>("/bank.v1.QueryService/GetBalance",
                             Rpc::kGetBalance, &QueryServiceImpl::GetBalance);
  Add<ListAccountsRequestWire>("/bank.v1.QueryService/ListAccounts",
                               Rpc::kListAccounts,
                               &QueryServiceImpl::ListAccounts);
  Add<GetHistoryRequestWire>("/bank.v1.QueryService/GetHistory",
                             Rpc::kGetHistory, &QueryServiceImpl::GetHistory);
}

}  // namespace bank::query
