#ifndef BANK_TESTS_SUPPORT_PG_ENVIRONMENT_H_
#define BANK_TESTS_SUPPORT_PG_ENVIRONMENT_H_

#include <functional>
#include <utility>

#include "gtest/gtest.h"
#include "tests/support/pg_cluster.h"

namespace bank::testing {

// One PostgreSQL cluster for a whole test binary: started before its first
// test into `*cluster`, then `prepare` (databases, migrations, processes)
// runs; `cleanup` runs and the cluster stops after its last test.
class PgEnvironment : public ::testing::Environment {
 public:
  explicit PgEnvironment(PgCluster** cluster,
                         std::function<void(PgCluster&)> prepare = {},
                         std::function<void()> cleanup = {})
      : cluster_(cluster),
        prepare_(std::move(prepare)),
        cleanup_(std::move(cleanup)) {}
  void SetUp() override {
    auto c = PgCluster::Start();
    ASSERT_TRUE(c.ok()) << c.status();
    *cluster_ = c->release();
    if (prepare_) prepare_(**cluster_);
  }
  void TearDown() override {
    if (cleanup_) cleanup_();
    delete *cluster_;
    *cluster_ = nullptr;
  }

 private:
  PgCluster** const cluster_;
  const std::function<void(PgCluster&)> prepare_;
  const std::function<void()> cleanup_;
};

// The main() of a test binary with one cluster.
inline int RunAllTestsWith(int argc, char** argv, PgEnvironment* env) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(env);
  return RUN_ALL_TESTS();
}

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_PG_ENVIRONMENT_H_
