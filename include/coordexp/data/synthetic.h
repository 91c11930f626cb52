// A tiny synthetic detection dataset for demos and tests: PNG images of filled, non-overlapping
// colored rectangles and circles on a plain background, and JSONL files (docs/data/JSONL_CONTRACT.md)
// with their exact pixel boxes and descriptions like "red circle". Deterministic for a seed.
// Not a benchmark: the task is trivially easy on purpose.
#pragma once

#include <cstdint>
#include <string>

namespace coordexp::data {

struct SyntheticDataOptions {
  std::string out_dir;     // receives images/, train.jsonl, val.jsonl (created when missing)
  int num_train = 32;      // training records
  int num_val = 8;         // validation records
  int width = 128;         // image width in pixels
  int height = 96;         // image height in pixels
  int max_objects = 3;     // objects per image: 1..max_objects
  uint64_t seed = 0;       // same seed -> same bytes

  // Throws ConfigError naming the flag (--num-train, --width, ...).
  void validate() const;
};

struct SyntheticDataResult {
  std::string train_jsonl;
  std::string val_jsonl;
  int64_t num_objects = 0;
};

SyntheticDataResult write_synthetic_dataset(const SyntheticDataOptions& options);

}  // namespace coordexp::data
