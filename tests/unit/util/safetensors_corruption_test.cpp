// Malformed safetensors files and sharded checkpoints: each case must be a FormatError that names
// the file, the tensor (or the header / __metadata__ part) and carries a hint; never a crash.
// Files are built byte by byte here, independently of the writer under test.
#include <gtest/gtest.h>

#include "coordexp/util/safetensors.h"
#include "unit/util/st_test_util.h"

namespace coordexp::util {
namespace {

using test::TempDir;

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}
std::string f32(const std::string& name, const std::string& shape, const std::string& offsets) {
  return entry(name, "\"F32\"", shape, offsets);
}

struct CorruptCase {
  const char* label;
  std::string header;
  size_t data_bytes;
  std::string subject;   // expected "tensor \"w\"", "header" or "__metadata__"
  std::string expected;  // case-specific part of the message
  std::optional<uint64_t> length_override = std::nullopt;
};

void expect_names(const std::string& msg, const std::string& file, const std::string& subject,
                  const std::string& expected) {
  EXPECT_NE(msg.find(file + ": " + subject), std::string::npos) << msg;
  EXPECT_NE(msg.find(expected), std::string::npos) << msg;
  EXPECT_NE(msg.find("(hint: "), std::string::npos) << msg;
  EXPECT_EQ(msg.back(), ')') << "the hint ends the message: " << msg;
}

TEST(SafetensorsCorruption, EveryMalformedHeaderIsANamedFormatError) {
  const std::string w = "tensor \"w\"";
  const std::string ok_w = f32("w", "[4]", "[0,16]");
  const std::vector<CorruptCase> cases = {
      {"truncated data", "{" + f32("a", "[4]", "[0,16]") + "," + f32("b", "[4]", "[16,32]") + "}",
       24, "tensor \"b\"", "run past the data section (24 bytes)"},
      {"length past EOF", "{" + ok_w + "}", 16, "header", "runs past the end of the file",
       uint64_t{4096}},
      {"length absurd", "{" + ok_w + "}", 16, "header", "exceeds the 100 MB limit",
       uint64_t{1} << 40},
      {"empty header", "", 0, "header", "not valid JSON"},
      {"bad JSON", "{" + ok_w + ",\"w2\":{\"dtype\":\"F32\",", 16, "tensor \"w2\"",
       "not valid JSON"},
      {"invalid UTF-8 name", "{\"w\xff\":{}}", 0, "header", "not valid JSON"},
      {"not an object", "[1,2]", 0, "header", "header must be a JSON object, got array"},
      {"entry not an object", R"({"w":5})", 0, w, "entry must be a JSON object"},
      {"missing dtype", R"({"w":{"shape":[4],"data_offsets":[0,16]}})", 16, w,
       "missing or non-string \"dtype\""},
      {"dtype not a string", "{" + entry("w", "4", "[4]", "[0,16]") + "}", 16, w,
       "missing or non-string \"dtype\""},
      {"unknown dtype", "{" + entry("w", "\"F8_E4M3\"", "[4]", "[0,4]") + "}", 4, w,
       "unknown or unsupported dtype \"F8_E4M3\""},
      {"negative dim", "{" + f32("w", "[-4]", "[0,16]") + "}", 16, w,
       "shape entry -4 is not a non-negative 64-bit integer"},
      {"float dim", "{" + f32("w", "[4.0]", "[0,16]") + "}", 16, w, "shape entry 4.0 is not"},
      {"dim beyond int64", "{" + f32("w", "[9223372036854775808]", "[0,16]") + "}", 16, w,
       "is not a non-negative 64-bit integer"},
      {"shape not an array", "{" + f32("w", "4", "[0,16]") + "}", 16, w, "non-array \"shape\""},
      {"shape nested", "{" + f32("w", "[[4]]", "[0,16]") + "}", 16, w, "nests deeper"},
      {"offsets missing", R"({"w":{"dtype":"F32","shape":[4]}})", 16, w,
       "missing \"data_offsets\""},
      {"offsets not a pair", "{" + f32("w", "[4]", "[0,8,16]") + "}", 16, w,
       "not a [begin, end] pair"},
      {"offsets negative", "{" + f32("w", "[4]", "[-16,0]") + "}", 16, w,
       "are not non-negative integers"},
      {"offsets reversed", "{" + f32("w", "[4]", "[16,0]") + "}", 16, w,
       "data_offsets [16, 0] are reversed"},
      {"shape/bytes mismatch", "{" + f32("w", "[3]", "[0,16]") + "}", 16, w,
       "shape [3] of F32 needs 12 bytes but data_offsets [0, 16] span 16"},
      {"numel overflow", "{" + f32("w", "[4294967296,4294967296]", "[0,16]") + "}", 16, w,
       "has too many elements"},
      {"bytes overflow", "{" + f32("w", "[4611686018427387904]", "[0,16]") + "}", 16, w,
       "has too many bytes"},
      {"empty tensor, huge strides", "{" + f32("w", "[0,4611686018427387904,4]", "[0,0]") + "}",
       0, w, "has too many elements"},
      {"overlap", "{" + f32("a", "[4]", "[0,16]") + "," + f32("b", "[4]", "[8,24]") + "}", 24,
       "tensor \"b\"", "bytes [8, 24) overlap tensor \"a\" (ends at 16)"},
      {"hole", "{" + f32("a", "[4]", "[0,16]") + "," + f32("b", "[4]", "[20,36]") + "}", 36,
       "tensor \"b\"", "hole: bytes [16, 20)"},
      {"trailing bytes", "{" + ok_w + "}", 20, w, "tensors cover only 16 (trailing bytes"},
      {"duplicate tensor", "{" + ok_w + "," + f32("w", "[4]", "[16,32]") + "}", 32, w,
       "tensor name appears twice"},
      {"duplicate key in entry",
       R"({"w":{"dtype":"F32","dtype":"I32","shape":[4],"data_offsets":[0,16]}})", 16, w,
       "key \"dtype\" appears twice"},
      {"metadata not an object", R"({"__metadata__":"pt"})", 0, "__metadata__",
       "must be a JSON object of strings"},
      {"metadata value not a string", R"({"__metadata__":{"format":1}})", 0, "__metadata__",
       "value of \"format\" must be a string"},
  };
  TempDir dir;
  for (const CorruptCase& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string path = dir.file("bad.safetensors");
    test::write_raw_safetensors(path, c.header, std::string(c.data_bytes, '\0'), c.length_override);
    expect_names(test::format_error_of([&] { SafetensorsFile::open(path); }), path, c.subject,
                 c.expected);
    // The pure parser agrees with the file reader.
    const std::string bytes = test::le64(c.length_override.value_or(c.header.size())) + c.header +
                              std::string(c.data_bytes, '\0');
    expect_names(test::format_error_of([&] {
                   parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            bytes.size(), "mem");
                 }),
                 "mem", c.subject, c.expected);
  }

  // Files shorter than the length field, including an empty one.
  for (const std::string& content : {std::string(), std::string("abc")}) {
    const std::string path = dir.file("short.safetensors");
    test::write_text(path, content);
    expect_names(test::format_error_of([&] { SafetensorsFile::open(path); }), path, "header",
                 "fewer than the 8-byte length");
  }
}

TEST(SafetensorsCorruption, BadTensorContentAndLookupsAreNamed) {
  TempDir dir;
  const std::string path = dir.file("b.safetensors");
  test::write_raw_safetensors(
      path, "{" + entry("flags", "\"BOOL\"", "[3]", "[0,3]") + "," + entry("e", "\"F32\"", "[0]", "[3,3]") + "}",
      std::string("\x01\x00\x02", 3));
  const auto file = SafetensorsFile::open(path);
  expect_names(test::format_error_of([&] { file->tensor("flags"); }), path, "tensor \"flags\"",
               "BOOL element 2 has byte value 2");
  EXPECT_EQ(file->tensor("e").numel(), 0);
  expect_names(test::format_error_of([&] { file->tensor("flag"); }), path, "tensor \"flag\"",
               "closest name: \"flags\"");
  expect_names(test::format_error_of([&] { file->raw("nope"); }), path, "tensor \"nope\"",
               "no such tensor in this file");
}

TEST(SafetensorsCorruption, ShardedCheckpointInconsistenciesAreNamed) {
  TempDir dir;
  const std::string d = dir.path().string();
  write_safetensors(dir.file("s1.safetensors"), {{"a", torch::ones({2})}});
  write_safetensors(dir.file("s2.safetensors"), {{"b", torch::ones({2})}, {"c", torch::ones({2})}});
  write_safetensors(dir.file("s3.safetensors"), {{"a", torch::ones({2})}, {"x", torch::ones({2})}});
  test::write_raw_safetensors(dir.file("broken.safetensors"), "{" + f32("q", "[4]", "[0,16]") + "}",
                              std::string(8, '\0'));
  const std::string index = dir.file("model.safetensors.index.json");
  struct Case {
    const char* label;
    std::string index_json;
    std::string where;  // file named first in the message
    std::string subject;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"missing shard", R"({"weight_map":{"a":"s1.safetensors","b":"gone.safetensors"}})", index,
       "tensor \"b\"", "shard \"gone.safetensors\" listed in weight_map does not exist"},
      {"key in a shard that lacks it", R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})",
       index, "tensor \"b\"", "maps the tensor to shard \"s1.safetensors\", which does not contain it"},
      {"key mapped to the wrong shard",
       R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors","c":"s2.safetensors","z":"s1.safetensors"}})",
       index, "tensor \"a\"", "(it is in \"s1.safetensors\")"},
      {"key not in the map", R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})", index,
       "tensor \"c\"", "stored in shard \"s2.safetensors\" but not listed in weight_map"},
      {"key in two shards", R"({"weight_map":{"a":"s1.safetensors","x":"s3.safetensors"}})", index,
       "tensor \"a\"", "stored in two shards: \"s1.safetensors\" and \"s3.safetensors\""},
      {"path in shard name", R"({"weight_map":{"a":"../s1.safetensors"}})", index, "tensor \"a\"",
       "is not a plain file name"},
      {"shard value not a string", R"({"weight_map":{"a":1}})", index, "tensor \"a\"",
       "weight_map value must be a shard file name"},
      {"no weight_map", R"({"metadata":{}})", index, "weight_map", "missing or not a JSON object"},
      {"index not JSON", R"({"weight_map":)", index + ": ", "", "index is not valid JSON"},
      {"corrupt shard", R"({"weight_map":{"q":"broken.safetensors"}})",
       dir.file("broken.safetensors"), "tensor \"q\"", "run past the data section"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    test::write_text(index, c.index_json);
    const std::string msg = test::format_error_of([&] { SafetensorsCheckpoint::open_dir(d); });
    if (c.subject.empty()) {
      EXPECT_NE(msg.find(c.where), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
    } else {
      expect_names(msg, c.where, c.subject, c.expected);
    }
  }
  // A consistent index opens, and a lookup of an absent key names the index.
  test::write_text(index, R"({"metadata":{"total_size":8},"weight_map":{"b":"s2.safetensors","c":"s2.safetensors"}})");
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(d);
  EXPECT_EQ(ckpt.keys(), (std::vector<std::string>{"b", "c"}));
  expect_names(test::format_error_of([&] { ckpt.tensor("d"); }), index, "tensor \"d\"",
               "no such tensor in the checkpoint");

  TempDir empty;
  const std::string msg =
      test::format_error_of([&] { SafetensorsCheckpoint::open_dir(empty.path().string()); });
  EXPECT_NE(msg.find(empty.path().string() + ": no model.safetensors"), std::string::npos) << msg;
}

}  // namespace
}  // namespace coordexp::util
