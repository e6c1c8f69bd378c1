// TLS and mutual TLS on the real executables, with certificates made by
// openssl during the test, driven through bankctl's TLS flags.
#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::PgCluster;
using testing::Process;
using testing::System;

PgCluster* pg = nullptr;
std::string certs;

void Sh(const std::string& cmd) {
  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

// A CA, a server certificate for localhost/127.0.0.1 and a client
// certificate signed by it; and a second, unrelated CA with its own client.
void MakeCertificates(const std::string& dir) {
  const std::string d = dir + "/";
  for (const std::string ca : {"ca", "rogue-ca"}) {
    Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + ca +
       " -keyout " + d + ca + ".key -out " + d + ca + ".pem");
  }
  std::ofstream(d + "san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  auto issue = [&](const std::string& name, const std::string& ca,
                   const std::string& ext) {
    Sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " +
       d + name + ".key -out " + d + name + ".csr");
    Sh("openssl x509 -req -days 2 -in " + d + name + ".csr -CA " + d + ca +
       ".pem -CAkey " + d + ca + ".key -CAcreateserial -out " + d + name +
       ".pem" + ext);
  };
  issue("server", "ca", " -extfile " + d + "san.ext");
  issue("client", "ca", "");
  issue("rogue-client", "rogue-ca", "");
}

void MakeCertificatesDir(PgCluster&) {
  char tmpl[] = "/tmp/bank-tls-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  certs = tmpl;
  MakeCertificates(certs);
}

void RemoveCertificatesDir() {
  if (std::getenv("BANK_KEEP_TEST_CERTS") == nullptr) {
    std::system(("rm -rf " + certs).c_str());
  }
}

std::string Bankctl(const std::vector<std::string>& args, int* code) {
  Process p(testing::BinDir() + "/bankctl", args);
  *code = p.Wait(absl::Seconds(30));
  return p.Log();
}

TEST(TlsTest, ServerTlsAcceptsClientsTrustingItsCaOnly) {
  System sys(*pg, "tls");
  auto cmd = sys.StartCommandService({"--tls-cert", certs + "/server.pem",
                                      "--tls-key", certs + "/server.key"});
  const std::string host = "localhost:" + std::to_string(sys.command_port);
  int code = -1;
  std::string out;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        out = Bankctl(
            {"--command-host", host, "--tls-ca", certs + "/ca.pem", "--no-wait",
             "--timeout", "2", "open", "--owner", "Alice", "--currency", "EUR"},
            &code);
        return code == 0;
      },
      absl::Seconds(20)))
      << out << cmd->Log();
  EXPECT_NE(out.find("opened"), std::string::npos) << out;
  // Plain text to a TLS server fails.
  out = Bankctl({"--command-host", host, "--no-wait", "--timeout", "2", "open",
                 "--owner", "Bob", "--currency", "EUR"},
                &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("UNAVAILABLE"), std::string::npos) << out;
  // A client that trusts another CA refuses the server.
  out = Bankctl(
      {"--command-host", host, "--tls-ca", certs + "/rogue-ca.pem", "--no-wait",
       "--timeout", "2", "open", "--owner", "Eve", "--currency", "EUR"},
      &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("UNAVAILABLE"), std::string::npos) << out;
}

TEST(TlsTest, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  System sys(*pg, "mtls");
  auto cmd = sys.StartCommandService();  // The query side needs the schema.
  auto proj = sys.StartProjector();
  auto qry = sys.StartQueryService({"--tls-cert", certs + "/server.pem",
                                    "--tls-key", certs + "/server.key",
                                    "--tls-client-ca", certs + "/ca.pem"});
  const std::string host = "localhost:" + std::to_string(sys.query_port);
  const std::string unknown = "123e4567-e89b-12d3-a456-426614174000";
  int code = -1;
  std::string out;
  // With the right client certificate the call gets through TLS: the server
  // answers NOT_FOUND for the unknown account.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        out = Bankctl(
            {"--query-host", host, "--tls-ca", certs + "/ca.pem", "--tls-cert",
             certs + "/client.pem", "--tls-key", certs + "/client.key",
             "--timeout", "2", "balance", unknown},
            &code);
        return out.find("NOT_FOUND") != std::string::npos;
      },
      absl::Seconds(20)))
      << out << qry->Log();
  // No client certificate: refused.
  out = Bankctl({"--query-host", host, "--tls-ca", certs + "/ca.pem",
                 "--timeout", "2", "balance", unknown},
                &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(out.find("NOT_FOUND"), std::string::npos) << out;
  EXPECT_NE(out.find("UNAVAILABLE"), std::string::npos) << out;
  // A certificate from another CA: refused.
  out = Bankctl(
      {"--query-host", host, "--tls-ca", certs + "/ca.pem", "--tls-cert",
       certs + "/rogue-client.pem", "--tls-key", certs + "/rogue-client.key",
       "--timeout", "2", "balance", unknown},
      &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(out.find("NOT_FOUND"), std::string::npos) << out;
}

TEST(TlsTest, MissingCertificateFileFailsAtStartup) {
  System sys(*pg, "tlsbad");
  auto cmd = sys.StartCommandService(
      {"--tls-cert", certs + "/nope.pem", "--tls-key", certs + "/server.key"});
  EXPECT_EQ(cmd->Wait(absl::Seconds(20)), 1);
  EXPECT_NE(cmd->Log().find("cannot read the TLS certificate"),
            std::string::npos)
      << cmd->Log();
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::pg, bank::MakeCertificatesDir,
                                       bank::RemoveCertificatesDir));
}
