#ifndef BANK_QUERY_SERVICE_RAW_QUERY_SERVICE_H_
#define BANK_QUERY_SERVICE_RAW_QUERY_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "query-service/query_service.h"

namespace bank::query {

// bank.v1.QueryService as registered with the server, on gRPC's callback
// API: each method receives the request's raw bytes, decodes them through a
// wire view whose text fields are bytes (proto/bank/internal/v1/wire.proto),
// refuses text that is not valid UTF-8 with INVALID_ARGUMENT naming the
// field, and hands the decoded request to QueryServiceImpl. The request lives
// in the call's reactor, which frees itself when gRPC is done with the call.
class RawQueryService final : public grpc::Service {
 public:
  explicit RawQueryService(QueryServiceImpl& impl);

 private:
  template <typename Wire, typename Req, typename Resp>
  void Add(const char* name, QueryServiceImpl::Rpc rpc,
           void (QueryServiceImpl::*method)(grpc::CallbackServerContext*,
                                            const Req*, Resp*,
                                            grpc::ServerUnaryReactor*));

  QueryServiceImpl& impl_;
  int methods_added_ = 0;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_RAW_QUERY_SERVICE_H_
