#include "common/grpc/raw_request.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/util/text.h"

namespace bank::grpcutil {

grpc::Status DecodeRequest(const grpc::ByteBuffer& raw,
                           google::protobuf::Message& wire,
                           google::protobuf::MessageLite& request) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
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
  // Same field numbers and wire types: the bytes are now a valid request.
  if (!request.ParseFromString(bytes)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request cannot be decoded");
  }
  return grpc::Status::OK;
}

}  // namespace bank::grpcutil
