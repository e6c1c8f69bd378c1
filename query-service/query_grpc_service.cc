#include "query-service/query_grpc_service.h"

#include "bank/internal/v1/wire.pb.h"

namespace bank::query {

template <typename Wire, typename Req, typename Resp>
void QueryGrpcService::Add(
    const char* name, QueryServiceImpl::Rpc rpc,
    void (QueryServiceImpl::*method)(grpc::CallbackServerContext*, const Req*,
                                     Resp*, grpc::ServerUnaryReactor*)) {
  AddRawUnary<Wire, Req, Resp>(
      name,
      [this, method](grpc::CallbackServerContext* ctx,
                     std::shared_ptr<const Req> req, Resp* resp,
                     grpc::ServerUnaryReactor* reactor) {
        // The request lives in the call until gRPC is done with it.
        (impl_.*method)(ctx, req.get(), resp, reactor);
      },
      [this, rpc](const grpc::Status& s, grpc::ServerUnaryReactor* reactor) {
        impl_.Refuse(rpc, s, reactor);
      });
}

QueryGrpcService::QueryGrpcService(QueryServiceImpl& impl, StreamHub& streams,
                                   GroupCoordinator& groups)
    : impl_(impl) {
  using namespace bank::internal::v1;
  using Rpc = QueryServiceImpl::Rpc;
  Add<GetBalanceRequestWire>("/bank.v1.QueryService/GetBalance",
                             Rpc::kGetBalance, &QueryServiceImpl::GetBalance);
  Add<ListAccountsRequestWire>("/bank.v1.QueryService/ListAccounts",
                               Rpc::kListAccounts,
                               &QueryServiceImpl::ListAccounts);
  Add<GetHistoryRequestWire>("/bank.v1.QueryService/GetHistory",
                             Rpc::kGetHistory, &QueryServiceImpl::GetHistory);
  AddRawServerStreaming<WatchAccountRequestWire, v1::WatchAccountRequest,
                        v1::AccountUpdate>(
      "/bank.v1.QueryService/WatchAccount",
      [&streams](grpc::CallbackServerContext* ctx,
                 const v1::WatchAccountRequest& req) {
        return streams.WatchAccount(ctx, req);
      },
      [&streams](const grpc::Status& s) { return streams.RefuseWatch(s); });
  AddRawServerStreaming<StreamEntriesRequestWire, v1::StreamEntriesRequest,
                        v1::EntryBatch>(
      "/bank.v1.QueryService/StreamEntries",
      [&streams](grpc::CallbackServerContext* ctx,
                 const v1::StreamEntriesRequest& req) {
        return streams.StreamEntries(ctx, req);
      },
      [&streams](const grpc::Status& s) { return streams.RefuseEntries(s); });
  AddRawBidiStreaming<grpc::ByteBuffer>(
      "/bank.v1.QueryService/Consume",
      [&groups](grpc::CallbackServerContext*) { return groups.Consume(); });
}

}  // namespace bank::query
