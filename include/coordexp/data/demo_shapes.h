// The built-in demo's detection task: PNG images of 1..4 filled shapes (circle, rectangle,
// triangle, diamond) in 5 colours, of varied sizes and with some overlap, on a textured, noisy grey
// background, and JSONL files (docs/data/JSONL_CONTRACT.md) with tight pixel boxes of each shape's
// visible pixels and descriptions like "red circle". Deterministic for a seed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::data {

struct DemoShapesOptions {
  std::string out_dir;   // receives images/, train.jsonl, val.jsonl (created when missing)
  int num_train = 2000;  // training records
  int num_val = 200;     // validation records
  int size = 256;        // square images, size x size pixels
  int min_objects = 1;
  int max_objects = 4;
  uint64_t seed = 0;     // same seed -> same bytes
  // Subsets of demo_shape_names() / demo_colours() to draw from, by name; empty = all of them.
  // Fewer, more distinct classes make a smaller model's task easier (the demo uses 3 x 4).
  std::vector<std::string> shapes;
  std::vector<std::string> colours;

  // Throws ConfigError naming the flag (--train, --size, --shapes, ...).
  void validate() const;
};

struct DemoShapesResult {
  std::string train_jsonl;
  std::string val_jsonl;
  int64_t num_objects = 0;
  int64_t num_overlapping = 0;  // objects partly hidden by a later one
};

// Nominal BGR colour of each colour name the generator uses (objects are drawn with a small
// per-object shade jitter and per-pixel noise around it).
struct DemoColour {
  const char* name;
  std::array<int, 3> bgr;
};
const std::array<DemoColour, 5>& demo_colours();
const std::array<const char*, 4>& demo_shape_names();

DemoShapesResult write_demo_shapes_dataset(const DemoShapesOptions& options);

}  // namespace coordexp::data
