// `coordexp-train generate` end to end on the trainer tests' tiny model (make-tiny with the real
// Qwen3 tokenizer + expand-vocab; integration/train/fixture.h) and one synthetic image: prints the
// decoded answer, the finish line and the parse line, honours --max-new-tokens and rollout.* from a
// config, is deterministic, and exits 2 on bad arguments or config values.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "integration/train/fixture.h"

namespace ct = coordexp::train::testing;

namespace {

std::string an_image() {
  for (const auto& e : ct::fs::recursive_directory_iterator(ct::Assets::get().root / "data"))
    if (e.path().extension() == ".png") return e.path().string();
  throw std::runtime_error("the synthetic dataset has no image");
}

// Run config: the tiny model with a 4096-pixel budget (4 image tokens) and extra YAML lines.
std::string write_config(const std::string& name, const std::string& extra) {
  const auto path = ct::Assets::get().root / (name + ".yaml");
  std::ofstream(path) << "model:\n  path: " << ct::Assets::get().model_dir
                      << "\n  device: cpu\npreprocess:\n  min_pixels: 4096\n  max_pixels: 4096\n"
                      << extra;
  return path.string();
}

// The number in "finish: <reason> after N new token(s)".
int new_tokens(const std::string& output, std::string* reason) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("finish: (eos|max_new_tokens) after ([0-9]+) new token")))
    return -1;
  *reason = m[1];
  return std::stoi(m[2]);
}

}  // namespace

TEST(GenerateCli, PrintsAnswerAndRespectsLimits) {
  const std::string image = an_image();
  const auto r = ct::run_binary("generate --model " + ct::Assets::get().model_dir + " --image " + image +
                                " --max-new-tokens 5 --prompt 'Find the shapes. {format}'");
  ASSERT_EQ(r.code, 0) << r.output;
  std::string reason;
  const int n = new_tokens(r.output, &reason);
  ASSERT_GE(n, 1) << r.output;
  EXPECT_LE(n, 5) << r.output;
  EXPECT_TRUE(reason == "eos" || n == 5) << r.output;
  EXPECT_NE(r.output.find("parse: "), std::string::npos) << r.output;

  // rollout.* from a config; --max-new-tokens wins over rollout.max_new_tokens; same output twice.
  const std::string cfg = write_config("gen", "rollout:\n  decoding: sample\n  temperature: 50.0\n  seed: 3\n"
                                              "  max_new_tokens: 40\n  stop_tokens: ['<|im_end|>']\n");
  const auto a = ct::run_binary("generate --config " + cfg + " --image " + image + " --max-new-tokens 7");
  const auto b = ct::run_binary("generate --config " + cfg + " --image " + image + " --max-new-tokens 7");
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_LE(new_tokens(a.output, &reason), 7) << a.output;
  // The printed answer: the output before the finish line, without the log lines.
  auto answer = [](const std::string& out) {
    std::istringstream in(out.substr(0, out.find("finish: ")));
    std::string line, text;
    while (std::getline(in, line))
      if (line.rfind("[20", 0) != 0) text += line + "\n";
    return text;
  };
  EXPECT_EQ(answer(a.output), answer(b.output));
  const auto other_seed =
      ct::run_binary("generate --config " + cfg + " --set rollout.seed=4 --image " + image + " --max-new-tokens 7");
  ASSERT_EQ(other_seed.code, 0) << other_seed.output;
  EXPECT_NE(answer(a.output), answer(other_seed.output)) << "temperature 50 is nearly uniform: seeds must differ";
}

TEST(GenerateCli, BadArgumentsExitTwo) {
  const std::string image = an_image();
  const std::string model = " --model " + ct::Assets::get().model_dir;
  const std::string cfg = write_config("gen_bad", "");
  for (const std::string& args :
       {"generate" + model,                                                    // no --image
        "generate --image " + image,                                           // no model
        "generate" + model + " --image " + image + " --max-new-tokens -3",     // bad count
        "generate" + model + " --image " + image + " --set rollout.top_k=2",   // --set without --config
        "generate --config " + cfg + " --image " + image + " --set rollout.top_p=1.5",
        "generate --config " + cfg + " --image " + image + " --set rollout.decoding=beam",
        "generate --config " + cfg + " --image " + image + " --set rollout.stop_tokens=['<|nope|>']"}) {
    const auto r = ct::run_binary(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
  }
}
