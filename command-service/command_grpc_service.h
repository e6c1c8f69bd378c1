#ifndef BANK_COMMAND_SERVICE_COMMAND_GRPC_SERVICE_H_
#define BANK_COMMAND_SERVICE_COMMAND_GRPC_SERVICE_H_

#include "command-service/command_rpcs.h"
#include "common/grpc/raw_service.h"

namespace bank::command {

// bank.v1.CommandService as registered with the gRPC server (RawService:
// raw bytes decoded through a wire view, so invalid UTF-8 is refused with
// INVALID_ARGUMENT naming the field). Each decoded request starts through
// CommandRpcs' *Async methods on gRPC's thread; a command that has to wait
// (for the database, or another command on its accounts) moves to the
// command service's pool (CommandExecutor), so gRPC's own threads never
// block, and a full pool answers RESOURCE_EXHAUSTED at once. Measured
// against the synchronous server and a pool per command by
// bench/threading.sh.
class CommandGrpcService final : public grpcutil::RawService {
 public:
  explicit CommandGrpcService(CommandRpcs& rpcs);

 private:
  template <typename Wire, typename Req, typename Resp>
  void Add(const char* name,
           void (CommandRpcs::*method)(const grpc::ServerContextBase&,
                                       std::shared_ptr<const Req>, Resp*,
                                       CommandRpcs::Finish));

  CommandRpcs& rpcs_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_GRPC_SERVICE_H_
