// The `coordexp-train tokenize` and `expand-vocab` commands: --text,
// --file (one input per line), --jsonl (JSON strings, may hold newlines), --decode, coord tokens,
// and the errors (invalid UTF-8 with file, line and byte offset; missing input). One run
// starts the real binary; the rest call the same CLI entry point in-process.
#include <sys/wait.h>

#include <cstdio>
#include <iostream>

#include "coordexp/apps/cli.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

struct CliResult {
  int code;
  std::string out;  // stdout + stderr
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The real binary (one smoke run: exit code and stdout of a separate process).
CliResult run_binary(const std::string& args) {
  const std::string cmd = std::string(COORDEXP_TRAIN_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  CliResult r{-1, {}};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The same CLI in-process (apps::run_cli is what main() calls), so each case costs no process start.
CliResult run(std::vector<std::string> args) {
  args.insert(args.begin(), {"coordexp-train", "--log-level", "warn"});
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = apps::run_cli(static_cast<int>(argv.size()), argv.data());
  std::cout.flush();
  std::cerr.flush();
  std::string out = ::testing::internal::GetCapturedStdout();
  out += ::testing::internal::GetCapturedStderr();
  return {code, out};
}

TEST(TokenizerCli, EncodeDecodeAndErrors) {
  if (!have_qwen()) FAIL() << missing_qwen_message();
  const std::string tdir = qwen_dir();
  const auto dir = temp_dir("cli");

  CliResult r = run_binary("tokenize --tokenizer " + quote(tdir) + " --text " + quote("Hello world<|im_end|> 123 don'T"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "[9707,1879,151645,220,16,17,18,1513,17323]\n");

  // --file: one input per line; the ids of good lines come out before the error, which exits 1
  // and names the file, the line and the byte offset.
  write_file(dir / "lines.txt", "user\n\nassistant\nbad \xC3( byte\n");
  r = run({"tokenize", "--tokenizer", tdir, "--file", (dir / "lines.txt").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.substr(0, r.out.find("error")), "[872]\n[]\n[77091]\n");
  EXPECT_NE(r.out.find("lines.txt:4: invalid UTF-8 at byte offset 4"), std::string::npos) << r.out;

  // --jsonl: JSON strings (may hold newlines), with the coord tokens added; invalid UTF-8 inside
  // a JSON line is an error naming the line.
  write_file(dir / "in.jsonl", "\"a\\nb\"\n\"<|coord_5|>\"\n\"bad \xFF\"\n");
  r = run({"tokenize", "--tokenizer", tdir, "--add-coord-tokens", "--jsonl", (dir / "in.jsonl").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.substr(0, r.out.find("error")), "[64,198,65]\n[151675]\n");
  EXPECT_NE(r.out.find("in.jsonl:3: not a valid JSON string at byte offset 5"), std::string::npos) << r.out;

  // --decode: one JSON array per line in, one JSON string per line out.
  write_file(dir / "ids.txt", "[64,198,65]\n[151675]\n[9707,1879,151645]\n");
  r = run({"tokenize", "--tokenizer", tdir, "--add-coord-tokens", "--decode", "--skip-special-tokens", "--file",
           (dir / "ids.txt").string()});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "\"a\\nb\"\n\"<|coord_5|>\"\n\"Hello world\"\n");  // coord tokens are not special

  // Usage errors exit 2.
  EXPECT_EQ(run({"tokenize", "--tokenizer", tdir}).code, 2);
  EXPECT_EQ(run({"tokenize", "--tokenizer", tdir, "--text", "a", "--file", "b"}).code, 2);
}

TEST(TokenizerCli, ExpandVocab) {
  if (!have_qwen()) FAIL() << missing_qwen_message();
  const auto dst = temp_dir("cli_expand");
  CliResult r = run({"expand-vocab", "--src", qwen_dir(), "--dst", dst.string()});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("added: <|coord_*|> = 151669, <|coord_0|>..<|coord_999|> = 151670..152669"), std::string::npos)
      << r.out;
  EXPECT_TRUE(std::filesystem::exists(dst / "tokenizer.json"));
  r = run({"expand-vocab", "--src", "/nonexistent", "--dst", dst.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no tokenizer.json"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
