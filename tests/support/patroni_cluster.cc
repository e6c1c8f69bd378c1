#include "tests/support/patroni_cluster.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tests/support/pg_cluster.h"

namespace bank::testing {
namespace {

// Patroni's configuration of one node (Patroni 3.0, etcd v3 API).
std::string PatroniConfig(const std::string& dir, const std::string& name,
                          int pg_port, int rest_port, int etcd_port,
                          const std::string& bindir) {
  return absl::StrCat(R"(scope: bank-ha
name: )",
                      name, R"(
restapi:
  listen: 127.0.0.1:)",
                      rest_port, R"(
  connect_address: 127.0.0.1:)",
                      rest_port, R"(
etcd3:
  hosts: 127.0.0.1:)",
                      etcd_port, R"(
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
        fsync: "off"
        max_connections: 100
  initdb:
  - encoding: UTF8
  - auth: trust
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:)",
                      pg_port, R"(
  connect_address: 127.0.0.1:)",
                      pg_port, R"(
  data_dir: )",
                      dir, "/", name, R"(/data
  bin_dir: )",
                      bindir, R"(
  pgpass: )",
                      dir, "/", name, R"(/pgpass
  basebackup:
  - checkpoint: fast
  authentication:
    superuser: {username: postgres}
    replication: {username: postgres}
    rewind: {username: postgres}
  parameters:
    unix_socket_directories: )",
                      dir, "/", name, "\n");
}

// Makes `path` the server user's when root (initdb refuses root).
bool GiveToServerUser(const std::string& path) {
  if (geteuid() != 0) return true;
  passwd* pw = getpwnam("postgres");
  return pw != nullptr && chown(path.c_str(), pw->pw_uid, pw->pw_gid) == 0;
}

}  // namespace

std::unique_ptr<Process> PatroniCluster::RunAsServerUser(
    const std::string& binary, const std::vector<std::string>& args) const {
  // In the cluster's folder: the test's own may be closed to the server
  // user, and initdb fails where it cannot return to its directory.
  std::vector<std::string> all = {"--chdir=" + dir_, binary};
  all.insert(all.end(), args.begin(), args.end());
  if (geteuid() != 0) return std::make_unique<Process>("/usr/bin/env", all);
  all.insert(all.begin(), {"--reuid=postgres", "--regid=postgres",
                           "--init-groups", "/usr/bin/env"});
  return std::make_unique<Process>("/usr/bin/setpriv", all);
}

absl::StatusOr<std::unique_ptr<PatroniCluster>> PatroniCluster::Start(
    int nodes) {
  auto c = std::unique_ptr<PatroniCluster>(new PatroniCluster());
  char tmpl[] = "/tmp/bank-patroni-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return absl::InternalError("cannot make a temporary folder");
  }
  c->dir_ = tmpl;
  if (!GiveToServerUser(c->dir_)) {
    return absl::InternalError("cannot give the folder to postgres");
  }
  c->etcd_port_ = PickFreePort();
  c->etcd_peer_port_ = PickFreePort();
  const std::string peer =
      absl::StrCat("http://127.0.0.1:", c->etcd_peer_port_);
  const std::string client = absl::StrCat("http://127.0.0.1:", c->etcd_port_);
  c->etcd_ = c->RunAsServerUser(
      "/usr/bin/etcd",
      {"--name", "e0", "--data-dir", c->dir_ + "/etcd", "--listen-client-urls",
       client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
       "--initial-advertise-peer-urls", peer, "--initial-cluster",
       "e0=" + peer});
  const std::string bindir = PgCluster::ServerBinDir();
  for (int i = 0; i < nodes; ++i) {
    Node n;
    n.name = absl::StrCat("n", i);
    n.pg_port = PickFreePort();
    n.rest_port = PickFreePort();
    const std::string home = c->dir_ + "/" + n.name;
    std::filesystem::create_directories(home);
    std::filesystem::permissions(home, std::filesystem::perms::owner_all);
    if (!GiveToServerUser(home)) {
      return absl::InternalError("cannot give a node's folder to postgres");
    }
    n.config = home + ".yml";
    std::ofstream(n.config) << PatroniConfig(c->dir_, n.name, n.pg_port,
                                             n.rest_port, c->etcd_port_,
                                             bindir);
    c->nodes_.push_back(std::move(n));
  }
  for (Node& n : c->nodes_) {
    n.patroni = c->RunAsServerUser("/usr/bin/patroni", {n.config});
    // The first one bootstraps the cluster; the others then copy it.
    if (&n == &c->nodes_.front()) {
      if (!c->WaitUntil(
              [](const std::vector<Member>& m) {
                for (const Member& x : m) {
                  if (x.role == "leader" && x.state == "running") return true;
                }
                return false;
              },
              absl::Seconds(60))) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no Patroni leader within 60 s; see ", n.patroni->Log()));
      }
    }
  }
  if (!c->WaitUntil([&](const auto& m) { return Healthy(m, nodes); },
                    absl::Seconds(90))) {
    return absl::DeadlineExceededError("the Patroni cluster did not form");
  }
  return c;
}

PatroniCluster::~PatroniCluster() {
  // Patroni first, so that nothing fails over or restarts; then each
  // PostgreSQL by an immediate shutdown (SIGQUIT), which ends its children.
  for (Node& n : nodes_) {
    if (n.patroni != nullptr && n.patroni->Running()) {
      n.patroni->Signal(SIGKILL);
      n.patroni->Wait(absl::Seconds(10));
    }
  }
  for (Node& n : nodes_) {
    if (int pid = PostmasterPid(n); pid > 0) kill(pid, SIGQUIT);
  }
  for (Node& n : nodes_) {
    const int pid = PostmasterPid(n);
    for (int i = 0; pid > 0 && kill(pid, 0) == 0 && i < 500; ++i) {
      usleep(20000);
    }
  }
  if (etcd_ != nullptr) {
    etcd_->Signal(SIGTERM);
    etcd_->Wait(absl::Seconds(10));
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string PatroniCluster::Uri(const std::string& db,
                                const std::string& session_attrs) const {
  std::vector<std::string> hosts;
  for (const Node& n : nodes_) {
    hosts.push_back(absl::StrCat("127.0.0.1:", n.pg_port));
  }
  return absl::StrCat("postgresql://postgres@", absl::StrJoin(hosts, ","), "/",
                      db, "?target_session_attrs=", session_attrs,
                      "&connect_timeout=2");
}

std::string PatroniCluster::NodeUri(const std::string& name,
                                    const std::string& db) const {
  for (const Node& n : nodes_) {
    if (n.name == name) {
      return absl::StrCat("postgresql://postgres@127.0.0.1:", n.pg_port, "/",
                          db, "?connect_timeout=2");
    }
  }
  return "";
}

absl::Status PatroniCluster::CreateDatabase(const std::string& name) {
  try {
    pqxx::connection c(Uri("postgres"));
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + tx.quote_name(name));
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  }
  // libpq tries the next host of a multi-host URI when one cannot be
  // reached or is not what target_session_attrs asks for, but not after a
  // FATAL such as "database does not exist" from a standby that has not
  // replayed the CREATE DATABASE yet: wait until every node has it.
  for (const Node& n : nodes_) {
    const bool there = WaitFor(
        [&] {
          try {
            pqxx::connection c(NodeUri(n.name, name));
            return true;
          } catch (const std::exception&) {
            return false;
          }
        },
        absl::Seconds(30));
    if (!there) {
      return absl::DeadlineExceededError(
          absl::StrCat("node ", n.name, " has no database ", name));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PatroniCluster::Member>> PatroniCluster::Members()
    const {
  for (const Node& n : nodes_) {
    HttpResponse r = HttpGet(n.rest_port, "/cluster");
    if (r.status != 200) continue;
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("members")) continue;
    std::vector<Member> out;
    for (const auto& m : j["members"]) {
      out.push_back({m.value("name", ""), m.value("role", ""),
                     m.value("state", ""), m.value("timeline", 0)});
    }
    return out;
  }
  return absl::UnavailableError("no Patroni node answers");
}

std::optional<std::string> PatroniCluster::WithRole(
    const std::string& role) const {
  absl::StatusOr<std::vector<Member>> m = Members();
  if (!m.ok()) return std::nullopt;
  for (const Member& x : *m) {
    if (x.role == role && x.state == "running") return x.name;
  }
  return std::nullopt;
}

bool PatroniCluster::WaitUntil(
    const std::function<bool(const std::vector<Member>&)>& ready,
    absl::Duration timeout) const {
  return WaitFor(
      [&] {
        absl::StatusOr<std::vector<Member>> m = Members();
        return m.ok() && ready(*m);
      },
      timeout);
}

bool PatroniCluster::Healthy(const std::vector<Member>& members, int running) {
  int leader_timeline = -1, up = 0;
  bool sync = false;
  for (const Member& m : members) {
    if (m.role == "leader" && m.state == "running") leader_timeline = m.timeline;
    if (m.role == "sync_standby" && m.state == "running") sync = true;
  }
  for (const Member& m : members) {
    if (m.state == "running" && m.timeline == leader_timeline) ++up;
  }
  return leader_timeline >= 0 && sync && up == running;
}

PatroniCluster::Node* PatroniCluster::Find(const std::string& name) {
  for (Node& n : nodes_) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

int PatroniCluster::PostmasterPid(const Node& node) const {
  std::ifstream in(dir_ + "/" + node.name + "/data/postmaster.pid");
  int pid = 0;
  return in >> pid ? pid : 0;
}

absl::Status PatroniCluster::Kill(const std::string& name) {
  Node* n = Find(name);
  if (n == nullptr) return absl::NotFoundError(name);
  const int postmaster = PostmasterPid(*n);
  n->patroni->Signal(SIGKILL);
  if (postmaster > 0) kill(postmaster, SIGKILL);
  n->patroni->Wait(absl::Seconds(10));
  // Its backends end when they notice the postmaster is gone.
  return absl::OkStatus();
}

absl::Status PatroniCluster::StartNode(const std::string& name) {
  Node* n = Find(name);
  if (n == nullptr) return absl::NotFoundError(name);
  if (n->patroni->Running()) return absl::FailedPreconditionError("running");
  n->patroni = RunAsServerUser("/usr/bin/patroni", {n->config});
  return absl::OkStatus();
}

absl::Status PatroniCluster::Switchover(const std::string& candidate) {
  std::optional<std::string> leader = WithRole("leader");
  if (!leader.has_value()) return absl::UnavailableError("no leader");
  const std::string cmd = absl::StrCat(
      "patronictl -c ", nodes_.front().config, " switchover --leader ",
      *leader, " --candidate ", candidate, " --force >>", dir_,
      "/patronictl.log 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("patronictl switchover failed; see ", dir_,
                     "/patronictl.log"));
  }
  return absl::OkStatus();
}

std::string PatroniCluster::Log(const std::string& name) const {
  for (const Node& n : nodes_) {
    if (n.name == name && n.patroni != nullptr) return n.patroni->Log();
  }
  return "";
}

}  // namespace bank::testing
