// safetensors writer/reader round trips: every dtype bit-exactly (random bit patterns, all 65536
// BF16/F16 patterns), 0-d and empty tensors, metadata, on-disk layout (padding, alignment,
// determinism), zero-copy lifetime, sharded directories with their index, atomic writes, and the
// real qwen3vl-tiny-a fixture checked against values computed independently (Python struct).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"
#include "unit/util/st_test_util.h"

namespace coordexp::util {
namespace {

using test::TempDir;

// Random bytes reinterpreted as `dtype` (so floats include NaN payloads, infinities, denormals).
torch::Tensor random_bits(torch::ScalarType dtype, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (dtype == torch::kBool) return torch::randint(0, 2, shape, torch::kUInt8).to(torch::kBool);
  const int64_t nbytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
  return torch::randint(0, 256, {nbytes}, torch::kUInt8).view(dtype).reshape(shape);
}

bool same_bytes(const torch::Tensor& a, const uint8_t* data, uint64_t nbytes) {
  const torch::Tensor c = a.contiguous();
  return c.nbytes() == nbytes && (nbytes == 0 || std::memcmp(c.data_ptr(), data, nbytes) == 0);
}

std::string read_bytes(const std::string& path) { return read_file(path); }

uint64_t header_length(const std::string& file_bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file_bytes[i]);
  return n;
}

TEST(Safetensors, RoundTripsEveryDTypeBitExactly) {
  torch::manual_seed(7);
  TempDir dir;
  NamedTensors tensors;
  const std::vector<torch::ScalarType> dtypes = {
      torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
      torch::kInt32,   torch::kInt16,   torch::kInt8,    torch::kUInt8,    torch::kBool};
  for (torch::ScalarType dt : dtypes) {
    const std::string n = c10::toString(dt);
    tensors.emplace_back(n + ".matrix", random_bits(dt, {3, 5}));
    tensors.emplace_back(n + ".scalar", random_bits(dt, {}));
    tensors.emplace_back(n + ".empty", random_bits(dt, {4, 0, 2}));
  }
  // Every 16-bit pattern as BF16 and F16 (NaNs with payloads, -0, subnormals, infinities).
  const torch::Tensor all16 = torch::arange(-32768, 32768, torch::kInt32).to(torch::kInt16);
  tensors.emplace_back("all_bf16", all16.view(torch::kBFloat16).reshape({256, 256}));
  tensors.emplace_back("all_f16", all16.view(torch::kFloat16));
  // A non-contiguous input is written in logical order.
  tensors.emplace_back("transposed", torch::arange(12, torch::kFloat32).reshape({3, 4}).t());
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "a \"quoted\"\n"}};

  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, tensors, metadata);
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const auto& [name, src] : tensors) {
    SCOPED_TRACE(name);
    const StTensorInfo* info = file->find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(st_dtype_to_torch(info->dtype), src.scalar_type());
    EXPECT_EQ(info->shape, src.sizes().vec());
    const auto [data, nbytes] = file->raw(name);
    EXPECT_TRUE(same_bytes(src, data, nbytes));
    const torch::Tensor loaded = file->tensor(name);
    EXPECT_EQ(loaded.scalar_type(), src.scalar_type());
    EXPECT_EQ(loaded.sizes(), src.sizes());
    EXPECT_TRUE(same_bytes(loaded, data, nbytes));
    if (nbytes > 0) {
      EXPECT_EQ(loaded.data_ptr(), static_cast<const void*>(data)) << "not zero-copy";
    }
  }
  EXPECT_TRUE(torch::equal(file->tensor("transposed"),
                           torch::arange(12, torch::kFloat32).reshape({3, 4}).t()));
  EXPECT_EQ(file->tensor("Float.scalar").dim(), 0);
  EXPECT_EQ(file->tensor("Float.empty").numel(), 0);
}

TEST(Safetensors, FileLayoutIsPaddedAlignedAndDeterministic) {
  TempDir dir;
  NamedTensors tensors = {{"b_u8", torch::ones({3}, torch::kUInt8)},
                          {"a_f64", torch::ones({2}, torch::kFloat64)},
                          {"c_f32", torch::ones({1}, torch::kFloat32)},
                          {"d_bf16", torch::ones({5}, torch::kBFloat16)}};
  write_safetensors(dir.file("x.safetensors"), tensors, {{"k", "v"}});
  std::reverse(tensors.begin(), tensors.end());
  write_safetensors(dir.file("y.safetensors"), tensors, {{"k", "v"}});
  const std::string x = read_bytes(dir.file("x.safetensors"));
  EXPECT_EQ(x, read_bytes(dir.file("y.safetensors"))) << "input order must not matter";

  const uint64_t n = header_length(x);
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header = x.substr(8, n);
  const size_t last = header.find_last_of('}');
  EXPECT_EQ(header.substr(last + 1), std::string(n - last - 1, ' ')) << "padding must be spaces";
  EXPECT_LT(n - last - 1, 8u);
  // __metadata__ first, then data order = element size descending, then name.
  const std::vector<std::string> order = {"__metadata__", "a_f64", "c_f32", "d_bf16", "b_u8"};
  size_t pos = 0;
  for (const std::string& key : order) {
    const size_t at = header.find("\"" + key + "\"");
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_GE(at, pos) << key;
    pos = at;
  }
  EXPECT_NE(header.find(R"("a_f64":{"dtype":"F64","shape":[2],"data_offsets":[0,16]})"),
            std::string::npos)
      << header;
  const auto file = SafetensorsFile::open(dir.file("x.safetensors"));
  for (const StTensorInfo& t : file->tensors())
    EXPECT_EQ((8 + n + t.data_begin) % st_dtype_size(t.dtype), 0u) << t.name;
}

// The streamed writer gives the same bytes as write_safetensors, asks for each tensor once, in data
// order, only after the header is known, and reports each write; a produced tensor that differs
// from the plan is refused naming it. release_pages leaves views readable (the file is read again).
TEST(Safetensors, StreamedWriteEqualsWriteAndProducesInDataOrder) {
  torch::manual_seed(3);
  TempDir dir;
  NamedTensors tensors = {{"w", torch::randn({64, 300})},
                          {"b16", torch::randn({7}).to(torch::kBFloat16)},
                          {"ids", torch::randint(0, 100, {5}, torch::kLong)},
                          {"empty", torch::zeros({0, 3})},
                          {"flag", torch::ones({2}, torch::kBool)}};
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  write_safetensors(dir.file("a.safetensors"), tensors, meta);
  std::vector<StTensorPlan> plan;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& [n, t] : tensors) {
    plan.push_back({n, st_dtype_from_torch(t.scalar_type()), t.sizes().vec()});
    by_name[n] = t;
  }
  std::vector<std::string> produced, written;
  write_safetensors_streamed(
      dir.file("b.safetensors"), plan, meta,
      [&](const std::string& n) {
        produced.push_back(n);
        return by_name.at(n);
      },
      [&](const std::string& n) { written.push_back(n); });
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), read_bytes(dir.file("b.safetensors")));
  // Data order: element size descending, then name; zero-byte tensors are not asked for.
  EXPECT_EQ(produced, (std::vector<std::string>{"ids", "w", "b16", "flag"}));
  EXPECT_EQ(written, (std::vector<std::string>{"ids", "empty", "w", "b16", "flag"}));

  auto wrong = plan;
  wrong[0].shape = {64, 299};
  EXPECT_THROW(write_safetensors_streamed(dir.file("c.safetensors"), wrong, meta,
                                          [&](const std::string& n) { return by_name.at(n); }),
               InternalError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.safetensors")));
  wrong = plan;
  wrong.push_back(plan[0]);
  EXPECT_THROW(write_safetensors_streamed(dir.file("c.safetensors"), wrong, meta,
                                          [&](const std::string& n) { return by_name.at(n); }),
               FormatError);

  const auto file = SafetensorsFile::open(dir.file("b.safetensors"));
  const torch::Tensor view = file->tensor("w");
  EXPECT_TRUE(torch::equal(view, tensors[0].second));
  file->release_pages("w");
  file->release_pages("empty");
  EXPECT_TRUE(torch::equal(view, tensors[0].second)) << "a released view reads the file again";
  EXPECT_TRUE(torch::equal(file->tensor("b16"), tensors[1].second));
}

TEST(Safetensors, MisalignedDataIsCopiedAndHeaderOrderIsFree) {
  TempDir dir;
  // Header length 10 puts the data at file offset 18, misaligned for F32; "b" comes first in the
  // data although it sorts after "a" in the header.
  const float values[3] = {1.5f, -2.25f, 3.0f};
  std::string data(reinterpret_cast<const char*>(values), sizeof values);
  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"b":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  test::write_raw_safetensors(dir.file("m.safetensors"), header, data);
  const auto file = SafetensorsFile::open(dir.file("m.safetensors"));
  ASSERT_NE(reinterpret_cast<uintptr_t>(file->raw("a").first) % 4, 0u) << "test premise";
  const torch::Tensor a = file->tensor("a");
  EXPECT_NE(a.data_ptr(), static_cast<const void*>(file->raw("a").first));
  EXPECT_TRUE(torch::equal(a, torch::tensor({-2.25f, 3.0f})));
  EXPECT_EQ(file->tensor("b").item<float>(), 1.5f);
  EXPECT_EQ(file->tensors()[0].name, "b") << "tensors() is sorted by data offset";
}

int mappings_of(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  const std::string canonical = std::filesystem::canonical(path).string();
  int count = 0;
  for (std::string line; std::getline(maps, line);)
    count += line.size() >= canonical.size() &&
             line.compare(line.size() - canonical.size(), canonical.size(), canonical) == 0;
  return count;
}

TEST(Safetensors, ViewsKeepTheMappingAliveAfterTheFileObjectDies) {
  TempDir dir;
  const torch::Tensor expected = torch::arange(1000, torch::kFloat32);
  write_safetensors_dir(dir.path().string(), {{"w", expected}});
  const std::string path = dir.file("model.safetensors");
  torch::Tensor view;
  {
    const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir.path().string());
    view = ckpt.tensor("w");
    EXPECT_EQ(mappings_of(path), 1);
  }
  EXPECT_EQ(mappings_of(path), 1) << "the view must hold the mapping";
  EXPECT_TRUE(torch::equal(view, expected));
  torch::Tensor second = SafetensorsFile::open(path)->tensor("w");
  EXPECT_TRUE(torch::equal(second, expected));
  view = torch::Tensor();
  second = torch::Tensor();
  EXPECT_EQ(mappings_of(path), 0) << "the mapping must go with the last view";
}

TEST(Safetensors, ShardedDirectoryRoundTripWithIndex) {
  TempDir dir;
  NamedTensors tensors;
  for (int i = 0; i < 7; ++i)  // 7 x 400 bytes, names in scrambled order
    tensors.emplace_back("layer." + std::to_string((i * 3) % 7) + ".w",
                         torch::full({100}, static_cast<float>(i), torch::kFloat32));
  tensors.emplace_back("big", torch::ones({300}, torch::kFloat32));  // 1200 bytes > max
  tensors.emplace_back("ids", torch::arange(10, torch::kInt64));
  ShardedWriteOptions opts;
  opts.max_shard_bytes = 1000;
  opts.metadata = {{"run", "unit"}};
  const std::string d = dir.path().string();
  const std::vector<std::string> written = write_safetensors_dir(d, tensors, opts);

  // Greedy over sorted keys: big | ids layer.0 layer.1 | layer.2 layer.3 | layer.4 layer.5 | layer.6
  const std::vector<std::string> expected_files = {
      "model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors",
      "model-00003-of-00005.safetensors", "model-00004-of-00005.safetensors",
      "model-00005-of-00005.safetensors", "model.safetensors.index.json"};
  EXPECT_EQ(written, expected_files);
  EXPECT_EQ(dir.listing(), expected_files) << "no temp files may remain";

  const nlohmann::json index = nlohmann::json::parse(read_file(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"], 7 * 400 + 1200 + 80);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(index["weight_map"]["big"], "model-00001-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["ids"], "model-00002-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00002-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.2.w"], "model-00003-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.6.w"], "model-00005-of-00005.safetensors");

  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(d);
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_EQ(ckpt.num_files(), 5u);
  EXPECT_EQ(ckpt.index_metadata().at("total_size"), "4080");
  EXPECT_EQ(ckpt.keys().size(), tensors.size());
  for (const auto& [name, src] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(torch::equal(ckpt.tensor(name), src));
    EXPECT_EQ(ckpt.file_of(name).path(),
              dir.file(index["weight_map"][name].get<std::string>()));
    EXPECT_EQ(ckpt.file_of(name).metadata().at("run"), "unit");
    EXPECT_EQ(ckpt.file_of(name).metadata().at("format"), "pt");
  }
  const SafetensorsCheckpoint via_index =
      SafetensorsCheckpoint::open_file(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(via_index.keys(), ckpt.keys());

  // Rewriting with fewer shards, then as one file, removes the stale layout's files.
  opts.max_shard_bytes = 2000;
  write_safetensors_dir(d, tensors, opts);
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                     "model-00002-of-00003.safetensors",
                                                     "model-00003-of-00003.safetensors",
                                                     "model.safetensors.index.json"}));
  test::write_text(dir.file("unrelated.txt"), "kept");
  opts.max_shard_bytes = 0;
  EXPECT_EQ(write_safetensors_dir(d, tensors, opts),
            std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"model.safetensors", "unrelated.txt"}));
  const SafetensorsCheckpoint single = SafetensorsCheckpoint::open_dir(d);
  EXPECT_FALSE(single.sharded());
  EXPECT_EQ(single.keys(), ckpt.keys());
}

TEST(Safetensors, AtomicWritesLeaveNoTempFilesAndKeepOldFileOnError) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  write_safetensors(path, {{"x", torch::ones({4})}});
  const std::string before = read_bytes(path);
  // Unsupported dtype: rejected before anything is created.
  const std::string msg = test::format_error_of([&] {
    write_safetensors(path, {{"z", torch::ones({2}, torch::kComplexFloat)}});
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"z\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("hint:"), std::string::npos) << msg;
  EXPECT_NE(test::format_error_of([&] {
              write_safetensors(path, {{"d", torch::ones({1})}, {"d", torch::ones({1})}});
            }).find("given twice"),
            std::string::npos);
  EXPECT_EQ(read_bytes(path), before);
  write_safetensors(path, {{"x", torch::zeros({8})}});
  EXPECT_NE(read_bytes(path), before);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"a.safetensors"});
  // Unwritable target directory: a DataError, and nothing left behind.
  EXPECT_THROW(write_safetensors(dir.file("missing/b.safetensors"), {{"x", torch::ones({1})}}),
               DataError);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"a.safetensors"});
}

TEST(Safetensors, ReadsFilesFromAnIndependentWriter) {
  // Written by tests/fuzz/make_seed_corpus.py (Python json/struct): data byte i of each tensor is
  // (i * 37 + 11) % 256 (% 2 for BOOL).
  const std::string corpus = std::string(COORDEXP_TEST_DATA_DIR) + "/../fuzz/corpus";
  const auto file = SafetensorsFile::open(corpus + "/all_dtypes.safetensors");
  EXPECT_EQ(file->metadata().at("note"), "seed");
  EXPECT_EQ(file->tensors().size(), 13u);
  for (const StTensorInfo& t : file->tensors()) {
    SCOPED_TRACE(t.name);
    const auto [data, nbytes] = file->raw(t.name);
    for (uint64_t i = 0; i < nbytes; ++i)
      ASSERT_EQ(data[i], (i * 37 + 11) % (t.dtype == StDType::BOOL ? 2 : 256));
    EXPECT_TRUE(same_bytes(file->tensor(t.name), data, nbytes));
  }
  EXPECT_EQ(file->find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_EQ(file->tensor("empty").sizes(), (std::vector<int64_t>{4, 0}));
  const auto unpadded = SafetensorsFile::open(corpus + "/unpadded_unordered.safetensors");
  // "a" (I64) sits at file offset 124, misaligned: read through the copy path. Value from struct.
  EXPECT_EQ(unpadded->tensor("a").item<int64_t>(), 1074606175335821323LL);
  EXPECT_EQ(SafetensorsFile::open(corpus + "/qwen3vl_tiny_shrunk.safetensors")->tensors().size(),
            69u);
  EXPECT_TRUE(SafetensorsFile::open(corpus + "/empty_header.safetensors")->tensors().empty());
}

TEST(Safetensors, ReadsTheQwen3VlTinyFixture) {
  const std::string fixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(fixture);
  EXPECT_FALSE(ckpt.sharded());
  const std::vector<std::string> keys = ckpt.keys();
  ASSERT_EQ(keys.size(), 69u);
  EXPECT_FALSE(ckpt.contains("lm_head.weight")) << "tied head: README says it is absent";
  int64_t params = 0;
  for (const std::string& k : keys) {
    EXPECT_EQ(ckpt.info(k).dtype, StDType::F32) << k;
    params += ckpt.tensor(k).numel();
  }
  EXPECT_EQ(params, 348576);  // README
  EXPECT_EQ(ckpt.file_of(keys[0]).metadata().at("format"), "pt");
  // Reference values from Python's struct module over the same bytes.
  const torch::Tensor embed = ckpt.tensor("model.language_model.embed_tokens.weight");
  EXPECT_EQ(embed.sizes(), (std::vector<int64_t>{2051, 64}));
  EXPECT_EQ(embed[0][0].item<float>(), -0.4645600914955139f);
  EXPECT_EQ(embed[2050][63].item<float>(), -0.40317830443382263f);
  EXPECT_NEAR(embed.to(torch::kFloat64).sum().item<double>(), 5.077513618294006, 1e-9);
  EXPECT_NEAR(embed.to(torch::kFloat64).abs().sum().item<double>(), 52193.361633903616, 1e-7);
  EXPECT_EQ(ckpt.info("model.visual.pos_embed.weight").data_begin, 1386112u);
  const std::string missing = test::format_error_of(
      [&] { ckpt.tensor("model.language_model.embed_tokens.weights"); });
  EXPECT_NE(missing.find("closest name: \"model.language_model.embed_tokens.weight\""),
            std::string::npos)
      << missing;

  // golden.safetensors: every tensor's dtype/shape agrees with golden.json, and a few values
  // agree with facts stated in the fixture README.
  const auto golden = SafetensorsFile::open(fixture + "/golden.safetensors");
  const nlohmann::json sidecar = nlohmann::json::parse(read_file(fixture + "/golden.json"));
  EXPECT_EQ(golden->tensors().size(), sidecar["tensors"].size());
  for (const auto& [name, desc] : sidecar["tensors"].items()) {
    SCOPED_TRACE(name);
    const StTensorInfo* info = golden->find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(st_dtype_name(info->dtype), desc["dtype"].get<std::string>());
    EXPECT_EQ(info->shape, desc["shape"].get<std::vector<int64_t>>());
  }
  EXPECT_TRUE(torch::equal(golden->tensor("image_grid_thw"), torch::tensor({{1L, 14L, 20L}})));
  const torch::Tensor ids = golden->tensor("input_ids");
  EXPECT_EQ(ids[0][0].item<int64_t>(), 1025);  // <|im_start|>
  EXPECT_TRUE((ids[0].slice(0, 4, 74) == 1036).all().item<bool>());  // 70 x <|image_pad|>
  const torch::Tensor pos = golden->tensor("position_ids");
  EXPECT_EQ(golden->tensor("rope_deltas").item<int64_t>(), pos.max().item<int64_t>() + 1 - 105);
  EXPECT_EQ(golden->tensor("resized_image").scalar_type(), torch::kUInt8);
}

}  // namespace
}  // namespace coordexp::util
