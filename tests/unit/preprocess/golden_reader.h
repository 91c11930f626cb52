// Test-only reader for the small safetensors goldens (8-byte LE header length, JSON header, raw
// little-endian data), used until the project's util/safetensors reader is merged. Reads the whole
// file; supports the dtypes the goldens use (F32, I64, U8). Fails the test on anything else.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace coordexp::testing {

inline std::map<std::string, torch::Tensor> read_golden_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, torch::Tensor> out;
  if (bytes.size() < 8) {
    ADD_FAILURE() << path << ": too short";
    return out;
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  const size_t base = 8 + header_len;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string dt = e["dtype"];
    const torch::ScalarType st = dt == "F32" ? torch::kFloat32 : dt == "I64" ? torch::kInt64 : torch::kUInt8;
    EXPECT_TRUE(dt == "F32" || dt == "I64" || dt == "U8") << name << ": dtype " << dt;
    const std::vector<int64_t> shape = e["shape"];
    const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
    torch::Tensor t = torch::empty(shape, st);
    EXPECT_EQ(static_cast<uint64_t>(t.nbytes()), end - begin) << name;
    EXPECT_LE(base + end, bytes.size()) << name;
    if (static_cast<uint64_t>(t.nbytes()) == end - begin && base + end <= bytes.size())
      std::memcpy(t.data_ptr(), bytes.data() + base + begin, end - begin);
    out[name] = t;
  }
  return out;
}

}  // namespace coordexp::testing
