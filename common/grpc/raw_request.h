#ifndef BANK_COMMON_GRPC_RAW_REQUEST_H_
#define BANK_COMMON_GRPC_RAW_REQUEST_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

namespace bank::grpcutil {

// Decodes a request's raw bytes into `request` through `wire`, a view of the
// same message whose text fields are `bytes` (proto/bank/internal/v1/
// wire.proto): INVALID_ARGUMENT for bytes that are not a request, or for a
// text field that is not valid UTF-8, naming the field. (Left to gRPC, proto3
// parsing refuses invalid UTF-8 itself, with INTERNAL and no message.)
grpc::Status DecodeRequest(const grpc::ByteBuffer& raw,
                           google::protobuf::Message& wire,
                           google::protobuf::MessageLite& request);

}  // namespace bank::grpcutil

#endif  // BANK_COMMON_GRPC_RAW_REQUEST_H_
