// Tokenizer speed: loading tokenizer.json, and single-threaded encoding of a mixed ~5 MB corpus
// (English prose, code, CoordJSON answers with coord tokens, Chinese/Japanese/Korean, and the golden
// test inputs), against the JavaScript reference on the same corpus file in the same run
// (scripts/bench-tokenizer-js.mjs). The token count and an id checksum must match the reference.
// Flags: the Google Benchmark ones, plus --corpus_mb=N (default 5) and --no_js.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "coordexp/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using coordexp::tokenizer::TokenId;
using coordexp::tokenizer::Tokenizer;

namespace {

std::string tokenizer_dir() {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  return env && *env ? env : COORDEXP_SOURCE_DIR "/.cache/tokenizer-qwen3";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ------------------------------------------------------------------------------------ corpus
// Deterministic: a fixed-seed generator over the tokenizer's own vocabulary (ids are roughly in
// frequency order, so a Zipf draw over them gives realistic word frequencies), plus real files.
struct Corpus {
  std::vector<std::string> docs, kinds;  // kinds[i] = kind of docs[i]
  std::map<std::string, size_t> bytes_by_kind;
  size_t bytes = 0;
  void add(const std::string& kind, std::string doc) {
    if (doc.empty()) return;
    bytes_by_kind[kind] += doc.size();
    bytes += doc.size();
    docs.push_back(std::move(doc));
    kinds.push_back(kind);
  }
};

bool all_of_class(const std::string& s, bool (*pred)(char32_t)) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t c;
    int len;
    if (b0 < 0x80) { c = b0; len = 1; }
    else if (b0 >= 0xC0 && b0 < 0xE0) { c = b0 & 0x1F; len = 2; }
    else if (b0 >= 0xE0 && b0 < 0xF0) { c = b0 & 0x0F; len = 3; }
    else if (b0 >= 0xF0 && b0 < 0xF8) { c = b0 & 0x07; len = 4; }
    else return false;
    if (i + static_cast<size_t>(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((b & 0xC0) != 0x80) return false;
      c = (c << 6) | (b & 0x3F);
    }
    if (!pred(c)) return false;
    i += static_cast<size_t>(len);
  }
  return !s.empty();
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3040 && c <= 0x30FF) || (c >= 0xAC00 && c <= 0xD7A3);
}

class Zipf {
 public:
  Zipf(size_t n, double s) : cdf_(n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) cdf_[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    for (double& v : cdf_) v /= sum;
  }
  size_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

Corpus build_corpus(const Tokenizer& tok, size_t target_bytes) {
  std::mt19937_64 rng(20251122);
  Corpus corpus;
  // Vocabulary words: " word" (lowercase English) and pure CJK tokens, in id order.
  std::vector<std::string> words, cjk;
  for (TokenId id = 0; id < 151643; ++id) {
    const std::string b = tok.token_bytes(id);
    if (b.size() >= 3 && b[0] == ' ' &&
        std::all_of(b.begin() + 1, b.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
      words.push_back(b);
    else if (all_of_class(b, &is_cjk))
      cjk.push_back(b);
  }
  const Zipf word_zipf(words.size(), 1.05), cjk_zipf(cjk.size(), 1.0);
  const auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  const auto prose = [&] {
    std::string doc;
    const int sentences = uniform(3, 20);
    for (int s = 0; s < sentences; ++s) {
      const int n = uniform(6, 28);
      for (int w = 0; w < n; ++w) {
        std::string word = words[word_zipf(rng)];
        if (w == 0) word[1] = static_cast<char>(word[1] - 'a' + 'A');
        if (chance(0.03)) word += words[word_zipf(rng)].substr(1);  // compounds BPE has not seen
        if (chance(0.02)) word = " " + std::to_string(uniform(0, 100000));
        if (chance(0.01)) word += "'s";
        doc += word;
        if (w + 1 < n && chance(0.08)) doc += ",";
      }
      doc += chance(0.9) ? "." : "?";
      if (chance(0.15)) doc += "\n\n";
    }
    return doc.substr(1);
  };
  const char* const descs[] = {"person", "car", "black cat", "yellow dog", "traffic light", "bicycle", "chair",
                               "dining table", "potted plant", "man in a red jacket", "white cup", "bus", "zebra",
                               "红色的汽车", "人", "sports ball", "umbrella", "laptop", "cell phone", "bird"};
  const auto coordjson = [&] {
    const auto coord = [&] { return "<|coord_" + std::to_string(uniform(0, 999)) + "|>"; };
    std::string doc = "{\"objects\": [";
    const int n = uniform(1, 25);
    for (int i = 0; i < n; ++i) {
      doc += i ? ", " : "";
      doc += std::string("{\"desc\": \"") + descs[uniform(0, 19)] + "\", \"bbox_2d\": [" + coord() + ", " + coord() +
             ", " + coord() + ", " + coord() + "]}";
    }
    return doc + "]}";
  };
  const auto cjk_text = [&] {
    std::string doc;
    const int n = uniform(20, 300);
    for (int i = 0; i < n; ++i) {
      doc += cjk[cjk_zipf(rng)];
      if (chance(0.08)) doc += chance(0.7) ? "，" : "。";
      if (chance(0.02)) doc += " " + std::to_string(uniform(0, 9999)) + " ";
    }
    return doc + "。";
  };

  // Real files: English legal prose shipped with every Debian system, and C++ code (this repo
  // and the standard library headers).
  std::vector<std::string> real_prose, code;
  for (const char* dir : {"/usr/share/common-licenses"}) {
    std::vector<fs::path> files;
    if (fs::is_directory(dir))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) real_prose.push_back(read_file(f));
  }
  std::vector<fs::path> code_files;
  for (const std::string& dir : {std::string(COORDEXP_SOURCE_DIR) + "/src", std::string(COORDEXP_SOURCE_DIR) + "/include",
                                std::string("/usr/include/c++/12/bits")})
    if (fs::is_directory(dir))
      for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) code_files.push_back(e.path());
  std::sort(code_files.begin(), code_files.end());
  for (const auto& f : code_files) code.push_back(read_file(f));

  std::vector<std::string> golden;
  std::ifstream g(std::string(COORDEXP_SOURCE_DIR) + "/tests/data/tokenizer_golden.jsonl");
  for (std::string line; std::getline(g, line);)
    if (!line.empty()) golden.push_back(nlohmann::json::parse(line).at("text").get<std::string>());

  // Shares of the corpus by kind.
  const std::vector<std::pair<std::string, double>> shares = {
      {"english (synthetic)", 0.22}, {"english (licenses)", 0.08}, {"code", 0.25},
      {"coordjson", 0.20},           {"cjk", 0.17},                {"golden inputs", 0.08}};
  size_t real_i = 0, code_i = 0, golden_i = 0;
  for (const auto& [kind, share] : shares) {
    const size_t want = static_cast<size_t>(share * static_cast<double>(target_bytes));
    const size_t start = corpus.bytes_by_kind[kind];
    while (corpus.bytes_by_kind[kind] - start < want) {
      if (kind == "english (synthetic)") corpus.add(kind, prose());
      else if (kind == "english (licenses)" && !real_prose.empty()) {
        // Paragraph-sized documents cut from the license texts.
        const std::string& f = real_prose[real_i++ % real_prose.size()];
        for (size_t p = 0; p < f.size() && corpus.bytes_by_kind[kind] - start < want; p += 4096)
          corpus.add(kind, f.substr(p, 4096));
      } else if (kind == "code" && !code.empty()) {
        const std::string& f = code[code_i++ % code.size()];
        for (size_t p = 0; p < f.size() && corpus.bytes_by_kind[kind] - start < want; p += 8192)
          corpus.add(kind, f.substr(p, 8192));
      } else if (kind == "coordjson") corpus.add(kind, coordjson());
      else if (kind == "cjk") corpus.add(kind, cjk_text());
      else if (kind == "golden inputs" && !golden.empty()) corpus.add(kind, golden[golden_i++ % golden.size()]);
      else corpus.add("english (synthetic)", prose());  // a missing source is replaced by prose
    }
  }
  // Cutting files at fixed sizes can split a UTF-8 character; keep only valid documents.
  Corpus valid;
  size_t dropped = 0;
  for (size_t i = 0; i < corpus.docs.size(); ++i) {
    try {
      tok.encode(corpus.docs[i]);
      valid.add(corpus.kinds[i], std::move(corpus.docs[i]));
    } catch (const std::exception&) {
      ++dropped;
    }
  }
  if (dropped) std::printf("corpus: dropped %zu documents cut inside a UTF-8 character\n", dropped);
  return valid;
}

// CPU time of the calling thread: the machine may be shared, and encoding is single-threaded.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct PassResult {
  double seconds = 0;  // CPU
  std::map<std::string, double> seconds_by_kind;
  size_t tokens = 0;
  uint32_t checksum = 0x811c9dc5u;  // FNV-1a over all ids, as in scripts/bench-tokenizer-js.mjs
};

PassResult encode_pass(const Tokenizer& tok, const Corpus& corpus) {
  PassResult r;
  for (size_t i = 0; i < corpus.docs.size(); ++i) {
    const double t0 = thread_cpu_seconds();
    const auto ids = tok.encode(corpus.docs[i]);
    const double dt = thread_cpu_seconds() - t0;
    r.seconds += dt;
    r.seconds_by_kind[corpus.kinds[i]] += dt;
    r.tokens += ids.size();
    for (const TokenId id : ids) r.checksum = (r.checksum ^ static_cast<uint32_t>(id)) * 16777619u;
  }
  return r;
}

// ------------------------------------------------------------------------------------ benchmarks
std::shared_ptr<Tokenizer> g_tok;
Corpus g_corpus;

void BM_LoadTokenizerJson(benchmark::State& state) {
  for (auto _ : state) {
    auto t = Tokenizer::from_dir(tokenizer_dir());
    benchmark::DoNotOptimize(t);
  }
}

void BM_EncodeCorpus(benchmark::State& state) {
  size_t tokens = 0;
  for (auto _ : state)
    for (const auto& d : g_corpus.docs) tokens += g_tok->encode(d).size();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_corpus.bytes));
  state.counters["tokens"] = static_cast<double>(tokens / static_cast<size_t>(state.iterations()));
}

void BM_EncodeCorpusWithOffsets(benchmark::State& state) {
  for (auto _ : state)
    for (const auto& d : g_corpus.docs) benchmark::DoNotOptimize(g_tok->encode_with_offsets(d));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_corpus.bytes));
}

// Console output plus the numbers the summary needs.
class Recorder : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> bytes_per_second, cpu_seconds;
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const std::string name = r.benchmark_name();
      const auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) bytes_per_second[name] = it->second.value;
      cpu_seconds[name] = r.GetAdjustedCPUTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    }
  }
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

int main(int argc, char** argv) {
  size_t corpus_mb = 5;
  bool run_js = true;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--corpus_mb=", 0) == 0) corpus_mb = std::stoul(a.substr(12));
    else if (a == "--no_js") run_js = false;
    else args.push_back(argv[i]);
  }
  int bargc = static_cast<int>(args.size());
  benchmark::Initialize(&bargc, args.data());

  const std::string dir = tokenizer_dir();
  if (!fs::exists(dir + "/tokenizer.json")) {
    std::fprintf(stderr, "no tokenizer at %s: run scripts/fetch-tokenizer.sh %s\n", dir.c_str(), dir.c_str());
    return 1;
  }
  g_tok = Tokenizer::from_dir(dir);
  g_tok->ensure_coord_tokens();
  std::printf("tokenizer: %s (regex JIT: %s)\n", dir.c_str(), g_tok->regex_uses_jit() ? "yes" : "no");

  g_corpus = build_corpus(*g_tok, corpus_mb << 20);
  const fs::path corpus_path = fs::temp_directory_path() / "coordexp_tokenizer_corpus.jsonl";
  {
    std::ofstream out(corpus_path, std::ios::binary);
    for (size_t i = 0; i < g_corpus.docs.size(); ++i)
      out << nlohmann::json{{"kind", g_corpus.kinds[i]}, {"text", g_corpus.docs[i]}}.dump() << "\n";
  }
  std::printf("corpus: %zu documents, %.2f MB -> %s\n", g_corpus.docs.size(), g_corpus.bytes / 1e6,
              corpus_path.c_str());
  for (const auto& [kind, bytes] : g_corpus.bytes_by_kind) std::printf("  %-22s %6.2f MB\n", kind.c_str(), bytes / 1e6);

  // Cold pass: a freshly loaded tokenizer (empty BPE cache); warm pass: the same one again.
  auto fresh = Tokenizer::from_dir(dir);
  fresh->ensure_coord_tokens();
  const PassResult cold = encode_pass(*fresh, g_corpus);
  const PassResult warm = encode_pass(*fresh, g_corpus);
  fresh.reset();

  benchmark::RegisterBenchmark("BM_LoadTokenizerJson", BM_LoadTokenizerJson)->Unit(benchmark::kMillisecond)->Iterations(5);
  benchmark::RegisterBenchmark("BM_EncodeCorpus", BM_EncodeCorpus)->Unit(benchmark::kMillisecond)->Iterations(5);
  benchmark::RegisterBenchmark("BM_EncodeCorpusWithOffsets", BM_EncodeCorpusWithOffsets)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(3);
  Recorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  benchmark::Shutdown();

  nlohmann::json js;
  if (run_js) {
    const std::string cmd = "node " + shell_quote(std::string(COORDEXP_SOURCE_DIR) + "/scripts/bench-tokenizer-js.mjs") +
                            " " + shell_quote(corpus_path.string());
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      pclose(p);
    }
    try {
      // The script prints one JSON line last (npm may print before it).
      while (!out.empty() && out.back() == '\n') out.pop_back();
      const size_t line = out.rfind('\n');
      js = nlohmann::json::parse(line == std::string::npos ? out : out.substr(line + 1));
    } catch (const std::exception&) {
      std::printf("JS reference did not run (%s); it needs node and npm (scripts/setup-js-reference.sh)\n", cmd.c_str());
      return 1;
    }
  }

  // MB = 10^6 bytes; all times are CPU seconds of one thread.
  const auto mbps = [](size_t bytes, double seconds) { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0; };
  std::printf("\n== summary (single thread, CPU time, MB = 10^6 bytes)\n");
  std::printf("load tokenizer.json (+ tokenizer_config.json): C++ %.0f ms (mean of 5)", recorder.cpu_seconds["BM_LoadTokenizerJson/iterations:5"] * 1e3);
  // The JS package embeds tokenizer.json as a module that is parsed when imported, before this.
  if (run_js) std::printf(", JS %.0f ms (without JSON parsing)", js["load_s"].get<double>() * 1e3);
  std::printf("\n%-22s %7s | %9s %9s | %9s %9s | %7s %7s\n", "encode MB/s", "MB", "C++ cold", "C++ warm", "JS cold",
              "JS warm", "x cold", "x warm");
  const auto row = [&](const std::string& name, size_t bytes, double cc, double cw, double jc, double jw) {
    std::printf("%-22s %7.2f | %9.2f %9.2f", name.c_str(), static_cast<double>(bytes) / 1e6, mbps(bytes, cc), mbps(bytes, cw));
    if (run_js) std::printf(" | %9.2f %9.2f | %6.1fx %6.1fx", mbps(bytes, jc), mbps(bytes, jw), jc / cc, jw / cw);
    std::printf("\n");
  };
  for (const auto& [kind, bytes] : g_corpus.bytes_by_kind) {
    const double jc = run_js ? js["cold_by_kind"].value(kind, 0.0) : 0, jw = run_js ? js["warm_by_kind"].value(kind, 0.0) : 0;
    row(kind, bytes, cold.seconds_by_kind.at(kind), warm.seconds_by_kind.at(kind), jc, jw);
  }
  row("all", g_corpus.bytes, cold.seconds, warm.seconds, run_js ? js["cold_s"].get<double>() : 0,
      run_js ? js["warm_s"].get<double>() : 0);
  std::printf("BM_EncodeCorpus (warm, Google Benchmark): %.2f MB/s\n",
              recorder.bytes_per_second["BM_EncodeCorpus/iterations:5"] / 1e6);
  if (!run_js) return 0;
  const bool same = js["tokens"].get<size_t>() == cold.tokens && js["checksum"].get<uint32_t>() == cold.checksum;
  std::printf("tokens: C++ %zu, JS %zu; ids identical to the JS reference on the whole corpus: %s (node %s)\n",
              cold.tokens, js["tokens"].get<size_t>(), same ? "yes" : "NO", js["node"].get<std::string>().c_str());
  return same ? 0 : 1;
}
