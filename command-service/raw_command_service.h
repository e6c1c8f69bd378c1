#ifndef BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_
#define BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "command-service/command_service.h"

namespace bank::command {

// bank.v1.CommandService as registered with the server, on gRPC's callback
// API: each method receives the request's raw bytes, decodes them through a
// wire view whose text fields are bytes (proto/bank/internal/v1/wire.proto),
// refuses text that is not valid UTF-8 with INVALID_ARGUMENT naming the
// field, and starts the decoded request through CommandServiceImpl's *Async
// methods on gRPC's thread. A command that has to wait (for the
// database, or another command on its accounts) moves to the command
// service's pool (CommandExecutor), so gRPC's own
// threads never block; a full pool answers RESOURCE_EXHAUSTED at once. (With
// the generated service, gRPC's proto3 parsing would refuse invalid UTF-8
// itself, with INTERNAL and no message.) Measured against the synchronous
// server and a pool per command by bench/threading.sh.
class RawCommandService final : public grpc::Service {
 public:
  explicit RawCommandService(CommandServiceImpl& impl);

 private:
  template <typename Wire, typename Req, typename Resp>
  void Add(const char* name,
           void (CommandServiceImpl::*method)(const grpc::ServerContextBase&,
                                              std::shared_ptr<const Req>, Resp*,
                                              CommandServiceImpl::Finish));

  CommandServiceImpl& impl_;
  int methods_added_ = 0;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_
