#ifndef BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_
#define BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "command-service/command_service.h"

namespace bank::command {

// bank.v1.CommandService as registered with the server: each method receives
// the request's raw bytes, decodes them through a wire view whose text
// fields are bytes (proto/bank/internal/v1/wire.proto), refuses text that is
// not valid UTF-8 with INVALID_ARGUMENT naming the field, and hands the
// decoded request to CommandServiceImpl. (With the generated service, gRPC's
// proto3 parsing would refuse such a request itself, with INTERNAL and no
// message.)
class RawCommandService final : public grpc::Service {
 public:
  explicit RawCommandService(CommandServiceImpl& impl);

 private:
  CommandServiceImpl& impl_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_RAW_COMMAND_SERVICE_H_
