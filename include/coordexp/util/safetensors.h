// safetensors I/O (https://github.com/huggingface/safetensors format): a validating, mmap-backed
// reader with zero-copy torch views, sharded checkpoints via model.safetensors.index.json, and an
// atomic writer (temp file + fsync + rename) with deterministic key order and optional sharding.
// Every malformed input is a FormatError naming the file and, where known, the tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coordexp::util {

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* st_dtype_name(StDType d);            // "F32", ...
size_t st_dtype_size(StDType d);                 // bytes per element
torch::ScalarType st_dtype_to_torch(StDType d);
StDType st_dtype_from_torch(torch::ScalarType t);  // throws FormatError for unsupported types

struct StTensorInfo {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // byte offsets relative to the start of the data section
  uint64_t data_end = 0;
};

// Parsed + validated header of a safetensors file (pure function over bytes; fuzzed).
struct StHeader {
  std::vector<StTensorInfo> tensors;  // sorted by data_begin
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_offset = 0;  // 8 + header length: where the data section starts in the file
};
// `bytes`/`size`: the whole file (or at least its first `size` bytes; size = file size).
// `file` is only used in error messages.
StHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& file);

// One mmap'd file. Tensor views share ownership of the mapping (safe after the file object dies).
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<StTensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const StTensorInfo* find(const std::string& name) const;  // nullptr if absent
  // Zero-copy CPU view of the tensor's bytes; it keeps the mapping alive after this object dies.
  // Treat it as read-only: the mapping is private copy-on-write, so a write never reaches the file
  // (and never faults) but is seen by other views of the same tensor. Data stored at an offset
  // misaligned for its dtype is copied instead; zero-element tensors are fresh empty tensors.
  // A missing name is a FormatError naming the file, the tensor and the closest existing name.
  torch::Tensor tensor(const std::string& name) const;
  // Raw bytes of a tensor (for byte-exact copies).
  std::pair<const uint8_t*, uint64_t> raw(const std::string& name) const;
  // Gives the resident pages holding the tensor's bytes back to the kernel (madvise MADV_DONTNEED;
  // pages shared with a neighbouring tensor too): memory that streaming readers are done with.
  // Views stay valid and read the file again when touched; an in-place write to a view is lost.
  void release_pages(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  StHeader header_;
  std::map<std::string, size_t> index_;
  std::shared_ptr<void> mapping_;  // munmap on release
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

// A model directory's weights: model.safetensors, or shards listed in model.safetensors.index.json
// (weight_map: key -> shard file). A missing shard or a key mapped to a shard that lacks it is a
// FormatError naming both.
class SafetensorsCheckpoint {
 public:
  // model.safetensors wins over an index when both exist (as in transformers; a warning is logged).
  static SafetensorsCheckpoint open_dir(const std::string& dir);
  // Also accepts a single file path (a path ending in .index.json is opened as an index).
  static SafetensorsCheckpoint open_file(const std::string& path);
  // Sharded checkpoint from its index file; shards are resolved next to the index. Errors: missing
  // shard, key mapped to a shard that lacks it, key in a shard but not in weight_map, a key in two
  // shards, shard names with a path component.
  static SafetensorsCheckpoint open_index(const std::string& index_path);

  std::vector<std::string> keys() const;  // sorted
  bool contains(const std::string& key) const;
  const StTensorInfo& info(const std::string& key) const;
  torch::Tensor tensor(const std::string& key) const;
  const SafetensorsFile& file_of(const std::string& key) const;
  bool sharded() const { return sharded_; }
  size_t num_files() const { return files_.size(); }
  const std::map<std::string, std::string>& index_metadata() const { return index_metadata_; }

 private:
  std::string source_;  // the file or index it was opened from (for error messages)
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> key_to_file_;
  std::map<std::string, std::string> index_metadata_;
  bool sharded_ = false;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes one file atomically and deterministically: the data is laid out by (element size
// descending, name), as the reference writer does, so every tensor is aligned for its dtype; the
// header lists tensors in that order after __metadata__ and is space-padded to a multiple of 8.
// Tensors may be on any device/dtype listed in StDType; they are copied to CPU contiguous one at a
// time. Duplicate names, "__metadata__" and unsupported dtypes are FormatErrors naming the tensor.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// What a streamed write knows before any data: each tensor's name, dtype and shape.
struct StTensorPlan {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
};
// write_safetensors with the data produced on demand (same layout, header and atomicity): the
// header is written from `plan`, then `produce(name)` is called once per tensor in data order and
// its result (dtype and shape must be the plan's, else InternalError) is written and dropped before
// the next call, so the writer holds one tensor at a time. `written(name)`, when given, is called
// after that tensor's bytes are written. Plan errors are write_safetensors's.
void write_safetensors_streamed(const std::string& path, const std::vector<StTensorPlan>& plan,
                                const std::map<std::string, std::string>& metadata,
                                const std::function<torch::Tensor(const std::string&)>& produce,
                                const std::function<void(const std::string&)>& written = {});

struct ShardedWriteOptions {
  uint64_t max_shard_bytes = 0;             // 0 = never shard (single model.safetensors)
  std::string prefix = "model";            // model-00001-of-00003.safetensors
  std::map<std::string, std::string> metadata;  // written into every shard's __metadata__
};
// Writes `dir`/model.safetensors, or shards + model.safetensors.index.json when the total exceeds
// max_shard_bytes (keys in sorted order, a new shard starts when the next tensor would overflow).
// max_shard_bytes counts tensor data only; a tensor larger than it gets a shard of its own. The
// index holds metadata.total_size (sum of tensor bytes) and weight_map. "format": "pt" is added to
// the shard metadata unless given (transformers requires it). Stale files of the other layout
// (old model.safetensors / index / shards with the same prefix) are removed after the new ones are
// in place. Returns the list of files written (relative names).
std::vector<std::string> write_safetensors_dir(const std::string& dir, const NamedTensors& tensors,
                                               const ShardedWriteOptions& opts = {});

}  // namespace coordexp::util
