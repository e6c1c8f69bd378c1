#ifndef BANK_TESTS_SUPPORT_PROCESS_H_
#define BANK_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace bank::testing {

// A child process of a test, with stdout and stderr in a log file. Killed
// (SIGKILL) on destruction if still running.
class Process {
 public:
  // Starts `binary` (a path) with args, adding env to the environment.
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits up to `timeout` for exit; returns the exit code, 128+signal when
  // killed by one, or -1 on timeout.
  int Wait(absl::Duration timeout);
  bool Running();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  int exit_code_ = -1;
  bool exited_ = false;
};

struct HttpResponse {
  int status = 0;  // 0: no answer
  std::string body;
};
// A plain HTTP GET of 127.0.0.1:port/path.
HttpResponse HttpGet(int port, const std::string& path);

// The value of one series ("name{labels}" exactly as exposed) in a Prometheus
// text exposition, or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series);

// Polls cond every 20 ms until it holds or timeout passes.
bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout);

// The folder the project's executables were built into.
std::string BinDir();

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_PROCESS_H_
