// The CLI's contract: --version and --help exit 0, unknown subcommands/flags exit 2.
#include <gtest/gtest.h>

#include "coordexp/apps/cli.h"

namespace {

int run(std::vector<const char*> args) {
  args.insert(args.begin(), "coordexp-train");
  return coordexp::apps::run_cli(static_cast<int>(args.size()), args.data());
}

TEST(Cli, VersionExitsZero) { EXPECT_EQ(run({"--version"}), 0); }
TEST(Cli, UnknownSubcommandIsUsageError) { EXPECT_EQ(run({"no-such-command"}), 2); }
TEST(Cli, MissingSubcommandIsUsageError) { EXPECT_EQ(run({}), 2); }
TEST(Cli, BadLogLevelIsUsageError) { EXPECT_EQ(run({"--log-level", "loud", "info"}), 2); }
TEST(Cli, InfoRuns) { EXPECT_EQ(run({"info"}), 0); }

}  // namespace
