// Fuzzes request decoding and validation as the servers run them: any
// bytes, as the raw request of each method of bank.v1.CommandService, go
// through the wire view (grpcutil::DecodeRequest, the UTF-8 check included)
// into validation without crashing, and a request that passes validation
// must be one the aggregate can decide on.
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>

#include "bank/internal/v1/wire.pb.h"
#include "command-service/request_validation.h"
#include "common/domain/bank_account.h"
#include "common/grpc/raw_request.h"
#include "common/util/uuid.h"

namespace {

using namespace bank::internal::v1;

// The servers' decoding: raw bytes, the wire view, then the request.
template <typename Wire, typename Req>
bool Parse(const uint8_t* data, size_t size, Req* req) {
  grpc::Slice slice(data, size);
  grpc::ByteBuffer raw(&slice, 1);
  Wire wire;
  return bank::grpcutil::DecodeRequest(raw, wire, *req).ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bank;
  {
    v1::OpenAccountRequest req;
    if (Parse<OpenAccountRequestWire>(data, size, &req) &&
        command::ValidateRequest(req).ok()) {
      domain::BankAccount a(
          req.account_id().empty()
              ? std::string("11111111-1111-4111-8111-111111111111")
              : util::CanonicalUuid(req.account_id()));
      // Validation and the aggregate agree: a valid open always succeeds.
      if (!a.Open(req.owner(), req.currency(), req.initial_deposit()).ok()) {
        __builtin_trap();
      }
    }
  }
  {
    v1::DepositRequest req;
    if (Parse<DepositRequestWire>(data, size, &req) &&
        command::ValidateRequest(req).ok()) {
      domain::BankAccount a(util::CanonicalUuid(req.account_id()));
      (void)a.Open("Fuzz", "EUR", 0);
      if (!a.Deposit(req.amount()).ok()) __builtin_trap();  // Positive amount.
    }
  }
  {
    v1::WithdrawRequest req;
    if (Parse<WithdrawRequestWire>(data, size, &req))
      (void)command::ValidateRequest(req);
  }
  {
    v1::CloseAccountRequest req;
    if (Parse<CloseAccountRequestWire>(data, size, &req))
      (void)command::ValidateRequest(req);
  }
  {
    v1::TransferRequest req;
    if (Parse<TransferRequestWire>(data, size, &req) &&
        command::ValidateRequest(req).ok()) {
      domain::BankAccount from(util::CanonicalUuid(req.from_account_id()));
      domain::BankAccount to(util::CanonicalUuid(req.to_account_id()));
      (void)from.Open("A", "EUR", 0);
      (void)to.Open("B", "EUR", 0);
      // Never money from nowhere: with no funds the transfer is refused.
      if (domain::Transfer(from, to, "t", req.amount()).ok()) __builtin_trap();
    }
  }
  return 0;
}
