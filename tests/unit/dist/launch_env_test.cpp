// dist without a process group: torchrun environment parsing (defaults, and errors that name the
// variable), backend resolution for CPU/CUDA runs, and the gradient bucket plan.
#include <gtest/gtest.h>

#include <map>

#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/util/error.h"

namespace coordexp::dist {
namespace {

using Env = std::map<std::string, std::string>;

LaunchEnv parse(const Env& env) {
  return parse_launch_env([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// The ConfigError's where() of parsing `env` ("" when it parses).
std::string error_variable(const Env& env) {
  try {
    parse(env);
  } catch (const ConfigError& e) {
    return e.where();
  }
  return "";
}

TEST(LaunchEnv, ParsesTorchrunVariablesAndDefaults) {
  const LaunchEnv single = parse({});
  EXPECT_FALSE(single.distributed());
  EXPECT_EQ(single.rank, 0);
  EXPECT_EQ(single.world_size, 1);
  EXPECT_FALSE(parse({{"RANK", "0"}}).distributed());
  EXPECT_FALSE(parse({{"WORLD_SIZE", "1"}, {"RANK", "0"}}).distributed());  // MASTER_* not needed

  const LaunchEnv e = parse({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                             {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}});
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_FALSE(e.agent_store);

  // A manual launch without the LOCAL_* variables: one machine.
  const LaunchEnv m = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(m.local_rank, 1);
  EXPECT_EQ(m.local_world_size, 2);

  const LaunchEnv a = parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"},
                             {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "3"}});
  EXPECT_TRUE(a.agent_store);
  EXPECT_EQ(a.restart_count, 3);
}

TEST(LaunchEnv, InconsistentOrMalformedVariablesAreNamed) {
  const Env ok = {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  ASSERT_EQ(error_variable(ok), "");
  auto with = [&](const std::string& k, const std::string& v) {
    Env e = ok;
    e[k] = v;
    return e;
  };
  auto without = [&](const std::string& k) {
    Env e = ok;
    e.erase(k);
    return e;
  };
  EXPECT_EQ(error_variable(with("WORLD_SIZE", "two")), "environment WORLD_SIZE");
  EXPECT_EQ(error_variable(with("WORLD_SIZE", "0")), "environment WORLD_SIZE");
  EXPECT_EQ(error_variable(with("WORLD_SIZE", "2x")), "environment WORLD_SIZE");
  EXPECT_EQ(error_variable(with("RANK", "-1")), "environment RANK");
  EXPECT_EQ(error_variable(with("RANK", "2")), "environment RANK");  // not below WORLD_SIZE
  EXPECT_EQ(error_variable(without("RANK")), "environment RANK");
  EXPECT_EQ(error_variable({{"RANK", "1"}}), "environment WORLD_SIZE");  // a rank > 0 needs a world
  EXPECT_EQ(error_variable(without("MASTER_ADDR")), "environment MASTER_ADDR");
  EXPECT_EQ(error_variable(with("MASTER_ADDR", "")), "environment MASTER_ADDR");
  EXPECT_EQ(error_variable(without("MASTER_PORT")), "environment MASTER_PORT");
  EXPECT_EQ(error_variable(with("MASTER_PORT", "70000")), "environment MASTER_PORT");
  EXPECT_EQ(error_variable(with("LOCAL_WORLD_SIZE", "3")), "environment LOCAL_WORLD_SIZE");  // > WORLD_SIZE
  EXPECT_EQ(error_variable(with("LOCAL_RANK", "2")), "environment LOCAL_RANK");            // >= LOCAL_WORLD_SIZE
  Env local = ok;
  local["LOCAL_WORLD_SIZE"] = "1";
  local["LOCAL_RANK"] = "1";
  EXPECT_EQ(error_variable(local), "environment LOCAL_RANK");
  try {
    parse(with("RANK", "7"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=7 is not below WORLD_SIZE=2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("torchrun"), std::string::npos) << e.what();  // the hint
  }
}

TEST(ProcessGroup, BackendResolutionAndBucketPlan) {
  EXPECT_EQ(resolve_backend("auto", false), "gloo");
  EXPECT_EQ(resolve_backend("gloo", false), "gloo");
  EXPECT_EQ(resolve_backend("auto", true), nccl_available() ? "nccl" : "gloo");
  try {
    resolve_backend("nccl", false);
    FAIL() << "nccl on CPU accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where(), "key dist.backend");
  }

  // 4-byte floats: 10 + 10 elements fit 100 bytes; 30 (120 bytes) is a bucket of its own; a dtype
  // change starts a new bucket.
  const std::vector<torch::Tensor> t = {torch::zeros({10}), torch::zeros({2, 5}), torch::zeros({30}),
                                        torch::zeros({5}), torch::zeros({5}, torch::kDouble), torch::zeros({1})};
  const auto buckets = plan_buckets(t, 100);
  const std::vector<std::vector<size_t>> expected = {{0, 1}, {2}, {3}, {4}, {5}};
  EXPECT_EQ(buckets, expected);
  EXPECT_TRUE(plan_buckets({}, 100).empty());
  EXPECT_EQ(plan_buckets(t, int64_t{1} << 20).size(), 3u);  // float run, double, float
}

}  // namespace
}  // namespace coordexp::dist
