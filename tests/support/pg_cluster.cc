#include "tests/support/pg_cluster.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"

namespace bank::testing {
namespace {

std::string FindBinDir() {
  if (const char* env = std::getenv("BANK_PG_BINDIR"); env && *env) return env;
  glob_t g;
  std::string best;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::string p = g.gl_pathv[i];
      p = p.substr(0, p.size() - std::string("/initdb").size());
      if (best.empty() ||
          std::stoi(p.substr(19)) > std::stoi(best.substr(19))) {
        best = p;
      }
    }
    globfree(&g);
  }
  return best;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

bool CanBind(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr = Loopback(port);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// The first port of the kernel's ephemeral range.
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (in >> low && low > 0) return low;
  return 32768;
}

}  // namespace

int PickFreePort() {
  // Below the ephemeral range: a port from bind(0) comes from that range,
  // which is also where every outgoing connection takes its source port, so
  // once released it can be taken by a connection (to PostgreSQL, or from a
  // test running beside) before the server under test binds it.
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  static auto* handed_out = new absl::flat_hash_set<int>;
  absl::MutexLock lock(&mu);
  const int low = 10000, high = EphemeralLow();
  for (int attempt = 0; high - low >= 1000 && attempt < 1000; ++attempt) {
    int port = absl::Uniform(*gen, low, high);
    if (!handed_out->contains(port) && CanBind(port)) {
      handed_out->insert(port);
      return port;
    }
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Loopback(0);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string PgCluster::ServerBinDir() { return FindBinDir(); }

absl::Status PgCluster::RunAsServerUser(const std::string& command) const {
  std::string cmd = command;
  if (geteuid() == 0) {
    cmd = absl::StrCat("runuser -u postgres -- sh -c ", ShellQuote(command));
  }
  cmd += absl::StrCat(" >>", ShellQuote(dir_ + "/harness.log"), " 2>&1");
  int rc = std::system(cmd.c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (", rc,
                                            "); see ", dir_, "/harness.log"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start() {
  auto c = std::unique_ptr<PgCluster>(new PgCluster());
  c->bindir_ = FindBinDir();
  if (c->bindir_.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL server binaries not found: install postgresql-15 or set "
        "BANK_PG_BINDIR");
  }
  if (absl::Status s = c->MakeDir(); !s.ok()) return s;
  if (absl::Status s = c->RunAsServerUser(absl::StrCat(
          ShellQuote(c->bindir_ + "/initdb"), " -D ",
          ShellQuote(c->dir_ + "/data"),
          " -U postgres --auth=trust -E UTF8 --locale=C --no-sync"));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = c->StartOnAFreePort(); !s.ok()) return s;
  return c;
}

absl::Status PgCluster::MakeDir() {
  char tmpl[] = "/tmp/bank-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;
  if (geteuid() == 0) {
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root needs the 'postgres' user (postgresql package)");
    }
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("cannot chown the cluster folder");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::StartStandbyOf(
    const PgCluster& primary) {
  auto c = std::unique_ptr<PgCluster>(new PgCluster());
  c->bindir_ = primary.bindir_;
  if (absl::Status s = c->MakeDir(); !s.ok()) return s;
  if (absl::Status s = c->RunAsServerUser(
          absl::StrCat(ShellQuote(c->bindir_ + "/pg_basebackup"),
                       " -h 127.0.0.1 -p ", primary.port_, " -U postgres -D ",
                       ShellQuote(c->dir_ + "/data"), " -R -X stream -c fast"));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = c->StartOnAFreePort(); !s.ok()) return s;
  return c;
}

absl::Status PgCluster::StartOnAFreePort() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = PickFreePort();
    if (StartServer().ok()) return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat("PostgreSQL did not start; see ", dir_, "/server.log"));
}

absl::Status PgCluster::StartServer() {
  std::string opts = absl::StrCat(
      "-p ", port_, " -k ", dir_,
      " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
      " -c shared_buffers=64MB");
  absl::Status s = RunAsServerUser(
      absl::StrCat(ShellQuote(bindir_ + "/pg_ctl"), " -D ",
                   ShellQuote(dir_ + "/data"), " -o ", ShellQuote(opts), " -l ",
                   ShellQuote(dir_ + "/server.log"), " -w -t 60 start"));
  running_ = s.ok();
  return s;
}

absl::Status PgCluster::Stop(bool immediate) {
  absl::Status s = RunAsServerUser(absl::StrCat(
      ShellQuote(bindir_ + "/pg_ctl"), " -D ", ShellQuote(dir_ + "/data"),
      " -m ", immediate ? "immediate" : "fast", " -w -t 60 stop"));
  if (s.ok()) running_ = false;
  return s;
}

absl::Status PgCluster::Restart() { return StartServer(); }

std::string PgCluster::Uri(const std::string& db) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", db);
}

absl::Status PgCluster::CreateDatabase(const std::string& name) {
  return RunAsServerUser(absl::StrCat(ShellQuote(bindir_ + "/createdb"),
                                      " -h 127.0.0.1 -p ", port_,
                                      " -U postgres ", ShellQuote(name)));
}

PgCluster::~PgCluster() {
  if (running_) (void)Stop(/*immediate=*/true);
  if (!dir_.empty() && std::getenv("BANK_KEEP_TEST_CLUSTER") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace bank::testing
