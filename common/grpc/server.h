#ifndef BANK_COMMON_GRPC_SERVER_H_
#define BANK_COMMON_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace bank::grpcutil {

struct ServerOptions {
  std::string listen = "0.0.0.0:0";
  // Requests here are tiny; anything larger is refused by gRPC itself.
  int max_receive_message_bytes = 64 * 1024;
  // Upper bound on the synchronous server's threads.
  int max_threads = 64;
  // TLS: PEM files of the server's certificate chain and key (both or
  // neither; neither means plain text), and optionally of the CA that client
  // certificates must be signed by (then clients must present one).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Fully qualified service names that health reports on, besides "".
  std::vector<std::string> health_service_names;
};

// A started gRPC server with the standard health service and server
// reflection. Health reports SERVING for "" and for each registered service
// once started, until SetServing(false) or Shutdown. Thread-safe.
class Server {
 public:
  // Starts serving `services` (which must outlive the server). Listening on
  // port 0 picks a free port (see port()). UNAVAILABLE when the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options,
      const std::vector<grpc::Service*>& services);

  int port() const { return port_; }
  // Calls in progress (all services, health included).
  int in_flight() const { return in_flight_.load(); }
  void SetServing(bool serving);
  // Health goes NOT_SERVING, new calls are refused, in-flight calls get
  // until `grace` to finish, then are cancelled.
  void Shutdown(absl::Duration grace);
  // Blocks until the server has shut down.
  void Wait();

 private:
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> service_names_;
  int port_ = 0;
  std::atomic<int> in_flight_{0};
};

}  // namespace bank::grpcutil

#endif  // BANK_COMMON_GRPC_SERVER_H_
