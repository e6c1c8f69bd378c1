#ifndef BANK_QUERY_SERVICE_QUERY_GRPC_SERVICE_H_
#define BANK_QUERY_SERVICE_QUERY_GRPC_SERVICE_H_

#include "common/grpc/raw_service.h"
#include "query-service/group_coordinator.h"
#include "query-service/query_service.h"
#include "query-service/stream_hub.h"

namespace bank::query {

// bank.v1.QueryService as registered with the gRPC server (RawService: raw
// bytes decoded through a wire view, so invalid UTF-8 is refused with
// INVALID_ARGUMENT naming the field), each decoded request handed to
// QueryServiceImpl, each stream to the StreamHub, and Consume to the
// GroupCoordinator.
class QueryGrpcService final : public grpcutil::RawService {
 public:
  QueryGrpcService(QueryServiceImpl& impl, StreamHub& streams,
                   GroupCoordinator& groups);

 private:
  template <typename Wire, typename Req, typename Resp>
  void Add(const char* name, QueryServiceImpl::Rpc rpc,
           void (QueryServiceImpl::*method)(grpc::CallbackServerContext*,
                                            const Req*, Resp*,
                                            grpc::ServerUnaryReactor*));

  QueryServiceImpl& impl_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_QUERY_GRPC_SERVICE_H_
