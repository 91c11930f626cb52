// safetensors reader/writer (format: https://github.com/huggingface/safetensors). The header is
// validated completely before any tensor byte is touched, following the reference implementation's
// rules: data offsets must tile the data section exactly (sorted, no overlap, no hole, no trailing
// bytes). Tensors are zero-copy views over a private mmap. Not handled: F8/U16/U32/U64 dtypes,
// big-endian hosts, files changed by another process while mapped (that raises SIGBUS).
#include "coordexp/util/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <spdlog/spdlog.h>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::util {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; so do we (a larger one is corrupt).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Root object -> tensor entry -> shape array: nothing in a valid header nests deeper.
constexpr size_t kMaxJsonDepth = 3;
constexpr const char* kDTypeList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";
constexpr const char* kExtension = ".safetensors";
constexpr const char* kIndexSuffix = ".safetensors.index.json";

// Rows in StDType order (row_of indexes by the enum value).
struct DTypeRow {
  StDType dtype;
  const char* name;
  size_t size;
  torch::ScalarType torch_type;
};
constexpr DTypeRow kDTypes[] = {
    {StDType::F64, "F64", 8, torch::kFloat64},   {StDType::F32, "F32", 4, torch::kFloat32},
    {StDType::F16, "F16", 2, torch::kFloat16},   {StDType::BF16, "BF16", 2, torch::kBFloat16},
    {StDType::I64, "I64", 8, torch::kInt64},     {StDType::I32, "I32", 4, torch::kInt32},
    {StDType::I16, "I16", 2, torch::kInt16},     {StDType::I8, "I8", 1, torch::kInt8},
    {StDType::U8, "U8", 1, torch::kUInt8},       {StDType::BOOL, "BOOL", 1, torch::kBool},
};

const DTypeRow& row_of(StDType d) {
  const auto i = static_cast<size_t>(d);
  COORDEXP_CHECK(i < std::size(kDTypes) && kDTypes[i].dtype == d, "bad StDType " << i);
  return kDTypes[i];
}

// JSON-quoted so that control characters or quotes in a (possibly hostile) name stay readable.
std::string json_quoted(const std::string& name) {
  return json(name).dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string tensor_subject(const std::string& name) { return "tensor " + json_quoted(name); }

[[noreturn]] void fail(const std::string& file, const std::string& subject, const std::string& what,
                       const std::string& hint) {
  throw FormatError(what, subject.empty() ? file : file + ": " + subject, hint);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <class Names>
std::string missing_tensor_hint(const std::string& name, const Names& names, size_t count) {
  if (count == 0) return "the file holds no tensors";
  const std::string* best = nullptr;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const std::string& n : names) {
    const size_t d = edit_distance(name, n);
    if (d < best_d) best_d = d, best = &n;
  }
  return std::to_string(count) + " tensors are present; closest name: " + json_quoted(*best);
}

// Parses the header JSON with a callback that rejects duplicate keys (nlohmann would silently keep
// the last one) and nesting deeper than a header needs, and remembers the tensor being parsed so a
// syntax error can name it.
json parse_header_json(const char* begin, const char* end, const std::string& file) {
  std::vector<std::set<std::string>> open_keys;  // one per open container (arrays: unused)
  std::string current_tensor;
  const auto subject = [&] {
    return current_tensor.empty() ? std::string("header") : tensor_subject(current_tensor);
  };
  const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open_keys.size() >= kMaxJsonDepth)
          fail(file, subject(), "header JSON nests deeper than a safetensors header can",
               "the header is corrupt; re-export the file");
        open_keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open_keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (open_keys.size() == 1) current_tensor = key;
        if (!open_keys.back().insert(key).second) {
          if (open_keys.size() == 1)
            fail(file, tensor_subject(key), "tensor name appears twice in the header",
                 "tensor names must be unique; re-export the file");
          fail(file, subject(), "key " + json_quoted(key) + " appears twice in the entry",
               "the header is corrupt; re-export the file");
        }
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    fail(file, subject(), std::string("header is not valid JSON: ") + e.what(),
         "the file is corrupt or not a safetensors file; re-download or re-export it");
  }
}

// A JSON number that is a non-negative integer, as uint64; nullopt otherwise.
std::optional<uint64_t> as_index(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

std::map<std::string, std::string> parse_metadata(const json& j, const std::string& file) {
  if (!j.is_object())
    fail(file, "__metadata__", "must be a JSON object of strings, got " + std::string(j.type_name()),
         "write __metadata__ as {\"key\": \"value\", ...}");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string())
      fail(file, "__metadata__", "value of " + json_quoted(key) + " must be a string, got " +
                                     std::string(value.type_name()),
           "safetensors metadata maps strings to strings; quote the value");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

StTensorInfo parse_entry(const std::string& name, const json& entry, uint64_t data_size,
                         const std::string& file) {
  const std::string subject = tensor_subject(name);
  const std::string entry_hint =
      "each tensor entry is {\"dtype\": \"F32\", \"shape\": [..], \"data_offsets\": [begin, end]}";
  if (!entry.is_object())
    fail(file, subject, "entry must be a JSON object, got " + std::string(entry.type_name()),
         entry_hint);
  StTensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string())
    fail(file, subject, "missing or non-string \"dtype\"", entry_hint);
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  const DTypeRow* row = nullptr;
  for (const DTypeRow& r : kDTypes)
    if (dtype_name == r.name) row = &r;
  if (!row)
    fail(file, subject, "unknown or unsupported dtype " + json_quoted(dtype_name),
         std::string("supported dtypes: ") + kDTypeList + "; convert the tensor before saving");
  info.dtype = row->dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array())
    fail(file, subject, "missing or non-array \"shape\"", entry_hint);
  // numel must fit, and so must the strides torch computes (product of max(dim, 1)), else a
  // zero-element tensor with huge other dims would overflow inside torch.
  uint64_t numel = 1, stride_span = 1;
  bool numel_overflow = false;
  for (const json& dim : *shape_it) {
    const std::optional<uint64_t> d = as_index(dim);
    if (!d || *d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(file, subject, "shape entry " + dim.dump() + " is not a non-negative 64-bit integer",
           "shape must be a list of non-negative integers");
    info.shape.push_back(static_cast<int64_t>(*d));
    if (__builtin_mul_overflow(stride_span, std::max<uint64_t>(*d, 1), &stride_span) ||
        stride_span > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(file, subject, "shape " + shape_text(info.shape) + " has too many elements",
           "the header is corrupt; re-export the file");
    numel_overflow = numel_overflow || __builtin_mul_overflow(numel, *d, &numel);
  }
  uint64_t nbytes = 0;
  if (numel_overflow || __builtin_mul_overflow(numel, row->size, &nbytes))
    fail(file, subject, "shape " + shape_text(info.shape) + " has too many bytes",
         "the header is corrupt; re-export the file");

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
    fail(file, subject, "missing \"data_offsets\" or not a [begin, end] pair", entry_hint);
  const std::optional<uint64_t> begin = as_index((*offsets_it)[0]);
  const std::optional<uint64_t> end = as_index((*offsets_it)[1]);
  if (!begin || !end)
    fail(file, subject, "data_offsets " + offsets_it->dump() + " are not non-negative integers",
         entry_hint);
  const std::string offsets_text = "data_offsets [" + std::to_string(*begin) + ", " +
                                   std::to_string(*end) + "]";
  if (*begin > *end)
    fail(file, subject, offsets_text + " are reversed (begin > end)",
         "the header is corrupt; re-export the file");
  if (*end > data_size)
    fail(file, subject, offsets_text + " run past the data section (" + std::to_string(data_size) +
                            " bytes)",
         "the file is truncated; re-download or re-export it");
  if (*end - *begin != nbytes)
    fail(file, subject, "shape " + shape_text(info.shape) + " of " + row->name + " needs " +
                            std::to_string(nbytes) + " bytes but " + offsets_text + " span " +
                            std::to_string(*end - *begin),
         "the header is corrupt; re-export the file");
  info.data_begin = *begin;
  info.data_end = *end;
  return info;
}

// The data section must be tiled exactly by the tensors, as the format (and its reference
// implementation) demands: this rules out overlapping tensors and polyglot files with hidden bytes.
void check_tiling(const std::vector<StTensorInfo>& sorted, uint64_t data_size,
                  const std::string& file) {
  uint64_t covered = 0;
  const StTensorInfo* previous = nullptr;
  for (const StTensorInfo& t : sorted) {
    if (t.data_begin < covered)
      fail(file, tensor_subject(t.name),
           "bytes [" + std::to_string(t.data_begin) + ", " + std::to_string(t.data_end) +
               ") overlap tensor " + json_quoted(previous->name) + " (ends at " +
               std::to_string(covered) + ")",
           "the header is corrupt; re-export the file");
    if (t.data_begin > covered)
      fail(file, tensor_subject(t.name),
           "hole: bytes [" + std::to_string(covered) + ", " + std::to_string(t.data_begin) +
               ") before this tensor belong to no tensor",
           "the safetensors format forbids unused bytes; re-export the file");
    covered = t.data_end;
    previous = &t;
  }
  if (covered != data_size)
    fail(file, previous ? tensor_subject(previous->name) : std::string("header"),
         "data section has " + std::to_string(data_size) + " bytes but the tensors cover only " +
             std::to_string(covered) + " (trailing bytes after the last tensor)",
         "the file has extra or missing bytes; re-download or re-export it");
}

}  // namespace

// ------------------------------------------------------------------------------------- dtypes

const char* st_dtype_name(StDType d) { return row_of(d).name; }
size_t st_dtype_size(StDType d) { return row_of(d).size; }
torch::ScalarType st_dtype_to_torch(StDType d) { return row_of(d).torch_type; }

StDType st_dtype_from_torch(torch::ScalarType t) {
  for (const DTypeRow& r : kDTypes)
    if (r.torch_type == t) return r.dtype;
  throw FormatError(std::string("torch dtype ") + c10::toString(t) + " cannot be stored",
                    "safetensors", std::string("convert to one of ") + kDTypeList);
}

// ------------------------------------------------------------------------------------- header

StHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& file) {
  if (size < 8)
    fail(file, "header", "file has " + std::to_string(size) + " bytes, fewer than the 8-byte length",
         "the file is truncated or not a safetensors file; re-download or re-export it");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  if (header_len > kMaxHeaderBytes)
    fail(file, "header", "header length " + std::to_string(header_len) + " exceeds the 100 MB limit",
         "the file is corrupt or not a safetensors file; re-download or re-export it");
  if (header_len > size - 8)
    fail(file, "header", "header length " + std::to_string(header_len) +
                             " runs past the end of the file (" + std::to_string(size) + " bytes)",
         "the file is truncated or not a safetensors file; re-download or re-export it");

  const char* json_begin = reinterpret_cast<const char*>(bytes + 8);
  const json root = parse_header_json(json_begin, json_begin + header_len, file);
  if (!root.is_object())
    fail(file, "header", "header must be a JSON object, got " + std::string(root.type_name()),
         "the file is corrupt or not a safetensors file; re-download or re-export it");

  StHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_size = size - header.data_offset;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__")
      header.metadata = parse_metadata(value, file);
    else
      header.tensors.push_back(parse_entry(key, value, data_size, file));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const StTensorInfo& a, const StTensorInfo& b) {
              return std::tie(a.data_begin, a.data_end, a.name) <
                     std::tie(b.data_begin, b.data_end, b.name);
            });
  check_tiling(header.tensors, data_size, file);
  return header;
}

// ------------------------------------------------------------------------------------- file

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw DataError(std::string("cannot open safetensors file: ") + std::strerror(errno), path,
                    "check that the path exists and is readable");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DataError("cannot open safetensors file: not a regular file", path,
                    "pass the path of a .safetensors file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    parse_safetensors_header(nullptr, size, path);  // throws the "too short" FormatError
  }
  // Private + writable: a stray in-place op on a view copies the page instead of faulting, and
  // can never reach the file.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);
  if (addr == MAP_FAILED)
    throw DataError(std::string("cannot mmap safetensors file: ") + std::strerror(mmap_errno), path,
                    "check free address space / memory limits");

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->mapping_ = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  file->path_ = path;
  file->base_ = static_cast<const uint8_t*>(addr);
  file->size_ = size;
  file->header_ = parse_safetensors_header(file->base_, size, path);
  for (size_t i = 0; i < file->header_.tensors.size(); ++i)
    file->index_.emplace(file->header_.tensors[i].name, i);
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

const StTensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::pair<const uint8_t*, uint64_t> SafetensorsFile::raw(const std::string& name) const {
  const StTensorInfo* info = find(name);
  if (!info) {
    std::vector<std::string> names;
    for (const auto& kv : index_) names.push_back(kv.first);
    fail(path_, tensor_subject(name), "no such tensor in this file",
         missing_tensor_hint(name, names, names.size()));
  }
  return {base_ + header_.data_offset + info->data_begin, info->data_end - info->data_begin};
}

void SafetensorsFile::release_pages(const std::string& name) const {
  const auto [data, nbytes] = raw(name);
  if (nbytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + nbytes + page - 1) / page * page;
  // Advice only: a failure leaves the pages resident, which is harmless.
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto [data, nbytes] = raw(name);
  const StTensorInfo& info = *find(name);
  const auto options = torch::TensorOptions().dtype(st_dtype_to_torch(info.dtype));
  if (info.dtype == StDType::BOOL) {
    // torch assumes bool bytes are 0 or 1; anything else is undefined behaviour in its kernels.
    for (uint64_t i = 0; i < nbytes; ++i)
      if (data[i] > 1)
        fail(path_, tensor_subject(name),
             "BOOL element " + std::to_string(i) + " has byte value " + std::to_string(data[i]),
             "BOOL tensors must hold bytes 0 or 1; re-export the file");
  }
  if (nbytes == 0) return torch::empty(info.shape, options);
  // Views must be aligned for their dtype (torch kernels assume it); the format does not promise
  // it, so a misaligned tensor is copied.
  if (reinterpret_cast<uintptr_t>(data) % st_dtype_size(info.dtype) != 0) {
    torch::Tensor copy = torch::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), data, nbytes);
    return copy;
  }
  std::shared_ptr<void> keep_alive = mapping_;
  return torch::from_blob(const_cast<uint8_t*>(data), info.shape,
                          [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

// ------------------------------------------------------------------------------------- checkpoint

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw DataError("not a directory", dir,
                    "pass a model directory (holding model.safetensors or its index)");
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  const bool has_single = fs::exists(single), has_index = fs::exists(index);
  if (has_single) {
    if (has_index)
      spdlog::warn("{}: both model.safetensors and model.safetensors.index.json exist; using "
                   "model.safetensors (as transformers does)", dir);
    return open_file(single);
  }
  if (has_index) return open_index(index);
  throw FormatError("no model.safetensors or model.safetensors.index.json", dir,
                    "point the model path at a Hugging Face model directory");
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_file(const std::string& path) {
  const std::string index_ending = ".index.json";
  if (path.size() >= index_ending.size() &&
      path.compare(path.size() - index_ending.size(), index_ending.size(), index_ending) == 0)
    return open_index(path);
  SafetensorsCheckpoint ckpt;
  ckpt.source_ = path;
  ckpt.files_.push_back(SafetensorsFile::open(path));
  for (const StTensorInfo& t : ckpt.files_[0]->tensors()) ckpt.key_to_file_.emplace(t.name, 0);
  return ckpt;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_index(const std::string& index_path) {
  const std::string text = read_file(index_path);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail(index_path, "", std::string("index is not valid JSON: ") + e.what(),
         "re-download the index or regenerate it");
  }
  const std::string index_hint =
      "an index is {\"metadata\": {...}, \"weight_map\": {\"tensor\": \"shard.safetensors\"}}";
  if (!root.is_object()) fail(index_path, "", "index must be a JSON object", index_hint);
  const auto map_it = root.find("weight_map");
  if (map_it == root.end() || !map_it->is_object())
    fail(index_path, "weight_map", "missing or not a JSON object", index_hint);

  SafetensorsCheckpoint ckpt;
  ckpt.source_ = index_path;
  ckpt.sharded_ = true;
  if (const auto meta_it = root.find("metadata"); meta_it != root.end()) {
    if (!meta_it->is_object()) fail(index_path, "metadata", "must be a JSON object", index_hint);
    for (const auto& [key, value] : meta_it->items())
      ckpt.index_metadata_[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }

  std::map<std::string, std::string> weight_map;                // key -> shard file name
  std::map<std::string, std::string> first_key_of_shard;        // for error messages
  for (const auto& [key, value] : map_it->items()) {
    if (!value.is_string())
      fail(index_path, tensor_subject(key), "weight_map value must be a shard file name",
           index_hint);
    const std::string shard = value.get<std::string>();
    if (shard.empty() || shard == "." || shard == ".." ||
        shard.find_first_of("/\\") != std::string::npos)
      fail(index_path, tensor_subject(key), "shard name " + json_quoted(shard) + " is not a plain file name",
           "shards must sit next to the index; fix weight_map");
    weight_map.emplace(key, shard);
    first_key_of_shard.emplace(shard, key);
  }

  std::map<std::string, size_t> shard_index;  // shard name -> files_ position (sorted by name)
  std::map<std::string, std::string> shard_of_key;
  for (const auto& [shard, first_key] : first_key_of_shard) {
    const std::string shard_path = resolve_relative_to(index_path, shard);
    if (!fs::exists(shard_path))
      fail(index_path, tensor_subject(first_key),
           "shard " + json_quoted(shard) + " listed in weight_map does not exist (" + shard_path + ")",
           "download the missing shard or regenerate the index");
    shard_index.emplace(shard, ckpt.files_.size());
    ckpt.files_.push_back(SafetensorsFile::open(shard_path));
    for (const StTensorInfo& t : ckpt.files_.back()->tensors()) {
      const auto [it, inserted] = shard_of_key.emplace(t.name, shard);
      if (!inserted)
        fail(index_path, tensor_subject(t.name),
             "tensor is stored in two shards: " + json_quoted(it->second) + " and " + json_quoted(shard),
             "remove the duplicate or regenerate the checkpoint");
    }
  }
  for (const auto& [key, shard] : weight_map) {
    const auto it = shard_of_key.find(key);
    if (it == shard_of_key.end() || it->second != shard)
      fail(index_path, tensor_subject(key),
           "weight_map maps the tensor to shard " + json_quoted(shard) + ", which does not contain it" +
               (it == shard_of_key.end() ? std::string() : " (it is in " + json_quoted(it->second) + ")"),
           "regenerate the index or re-download the shards");
    ckpt.key_to_file_.emplace(key, shard_index.at(shard));
  }
  for (const auto& [key, shard] : shard_of_key)
    if (!weight_map.count(key))
      fail(index_path, tensor_subject(key),
           "tensor is stored in shard " + json_quoted(shard) + " but not listed in weight_map",
           "regenerate the index so it lists every tensor");
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::keys() const {
  std::vector<std::string> out;
  out.reserve(key_to_file_.size());
  for (const auto& kv : key_to_file_) out.push_back(kv.first);
  return out;
}

bool SafetensorsCheckpoint::contains(const std::string& key) const {
  return key_to_file_.count(key) > 0;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& key) const {
  const auto it = key_to_file_.find(key);
  if (it == key_to_file_.end()) {
    const std::vector<std::string> names = keys();
    fail(source_, tensor_subject(key),
         "no such tensor in the checkpoint", missing_tensor_hint(key, names, names.size()));
  }
  return *files_[it->second];
}

const StTensorInfo& SafetensorsCheckpoint::info(const std::string& key) const {
  return *file_of(key).find(key);
}

torch::Tensor SafetensorsCheckpoint::tensor(const std::string& key) const {
  return file_of(key).tensor(key);
}

// ------------------------------------------------------------------------------------- writer

namespace {

struct PlannedTensor {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes;
  const torch::Tensor* source;
};

// Sorted by name; reserved and duplicate names refused.
void check_plan(std::vector<PlannedTensor>& plan, const std::string& where) {
  for (const PlannedTensor& t : plan)
    if (t.name == "__metadata__") fail(where, tensor_subject(t.name), "reserved name", "rename the tensor");
  std::sort(plan.begin(), plan.end(),
            [](const PlannedTensor& a, const PlannedTensor& b) { return a.name < b.name; });
  for (size_t i = 1; i < plan.size(); ++i)
    if (plan[i].name == plan[i - 1].name)
      fail(where, tensor_subject(plan[i].name), "tensor name given twice",
           "tensor names in one checkpoint must be unique");
}

std::vector<PlannedTensor> plan_tensors(const NamedTensors& tensors, const std::string& where) {
  std::vector<PlannedTensor> plan;
  plan.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      fail(where, tensor_subject(name), "reserved name", "rename the tensor");
    if (!t.defined())
      fail(where, tensor_subject(name), "tensor is undefined", "pass a defined tensor");
    StDType dtype;
    try {
      dtype = st_dtype_from_torch(t.scalar_type());
    } catch (const FormatError& e) {
      fail(where, tensor_subject(name), e.message(), e.hint());
    }
    plan.push_back({name, dtype, t.sizes().vec(),
                    static_cast<uint64_t>(t.numel()) * st_dtype_size(dtype), &t});
  }
  check_plan(plan, where);
  return plan;
}

// Compact JSON like the reference writer: __metadata__ first, then tensors in the given order
// (data offsets increase in that order), padded with spaces so the data starts 8-byte aligned.
std::string build_header(const std::vector<const PlannedTensor*>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  if (!metadata.empty()) h += "\"__metadata__\":" + json(metadata).dump();
  uint64_t offset = 0;
  for (const PlannedTensor* t : tensors) {
    if (h.size() > 1) h += ',';
    h += json(t->name).dump() + ":{\"dtype\":\"" + st_dtype_name(t->dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t->shape.size(); ++i) h += (i ? "," : "") + std::to_string(t->shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," +
         std::to_string(offset + t->nbytes) + "]}";
    offset += t->nbytes;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

// Data order inside one file: element size descending, then name (as the reference writer does).
// With the header padded to 8 bytes this makes every tensor aligned for its dtype, so readers can
// map it zero-copy; it depends only on names and dtypes, so it is deterministic.
std::vector<const PlannedTensor*> data_order(std::vector<const PlannedTensor*> tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const PlannedTensor* a, const PlannedTensor* b) {
    const size_t sa = st_dtype_size(a->dtype), sb = st_dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  return tensors;
}

// Header, then each tensor's bytes in data order, asking `produce` for one tensor at a time.
void write_planned(const std::string& path, const std::vector<const PlannedTensor*>& by_name,
                   const std::map<std::string, std::string>& metadata,
                   const std::function<torch::Tensor(const PlannedTensor&)>& produce,
                   const std::function<void(const std::string&)>& written = {}) {
  const std::vector<const PlannedTensor*> tensors = data_order(by_name);
  const std::string header = build_header(tensors, metadata);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i));
  AtomicFileWriter writer(path);
  writer.write(length, 8);
  writer.write(header.data(), header.size());
  for (const PlannedTensor* t : tensors) {
    if (t->nbytes > 0) {
      const torch::Tensor cpu = produce(*t).detach().to(torch::kCPU).contiguous();
      COORDEXP_CHECK(st_dtype_from_torch(cpu.scalar_type()) == t->dtype && cpu.sizes().vec() == t->shape,
                     "tensor " << t->name << " produced as " << cpu.scalar_type() << " " << cpu.sizes()
                               << " but planned as " << st_dtype_name(t->dtype) << " " << c10::IntArrayRef(t->shape));
      writer.write(cpu.data_ptr(), t->nbytes);
    }
    if (written) written(t->name);
  }
  writer.commit();
}

void write_planned(const std::string& path, const std::vector<const PlannedTensor*>& by_name,
                   const std::map<std::string, std::string>& metadata) {
  write_planned(path, by_name, metadata, [](const PlannedTensor& t) { return *t.source; });
}

std::string shard_name(const std::string& prefix, size_t i, size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", i, n);
  return prefix + buf + kExtension;
}

bool is_shard_name(const std::string& file, const std::string& prefix) {
  const std::string pattern = prefix + "-00000-of-00000" + kExtension;
  if (file.size() != pattern.size() || file.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < pattern.size(); ++i) {
    const bool digit_slot = pattern[i] == '0';
    if (digit_slot ? !std::isdigit(static_cast<unsigned char>(file[i])) : file[i] != pattern[i])
      return false;
  }
  return true;
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<PlannedTensor> plan = plan_tensors(tensors, path);
  std::vector<const PlannedTensor*> order;
  for (const PlannedTensor& t : plan) order.push_back(&t);
  write_planned(path, order, metadata);
}

void write_safetensors_streamed(const std::string& path, const std::vector<StTensorPlan>& plan,
                                const std::map<std::string, std::string>& metadata,
                                const std::function<torch::Tensor(const std::string&)>& produce,
                                const std::function<void(const std::string&)>& written) {
  std::vector<PlannedTensor> planned;
  planned.reserve(plan.size());
  for (const StTensorPlan& t : plan) {
    uint64_t numel = 1;
    for (const int64_t d : t.shape) {
      if (d < 0) fail(path, tensor_subject(t.name), "negative dimension in the plan", "pass the tensor's shape");
      numel *= static_cast<uint64_t>(d);
    }
    planned.push_back({t.name, t.dtype, t.shape, numel * st_dtype_size(t.dtype), nullptr});
  }
  check_plan(planned, path);
  std::vector<const PlannedTensor*> order;
  for (const PlannedTensor& t : planned) order.push_back(&t);
  write_planned(path, order, metadata, [&](const PlannedTensor& t) { return produce(t.name); }, written);
}

std::vector<std::string> write_safetensors_dir(const std::string& dir, const NamedTensors& tensors,
                                               const ShardedWriteOptions& opts) {
  if (opts.prefix.empty() || opts.prefix.find('/') != std::string::npos)
    throw ConfigError("shard prefix " + json_quoted(opts.prefix) + " must be a plain, non-empty name",
                      dir, "use e.g. \"model\"");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw DataError("cannot create directory: " + ec.message(), dir,
                    "check the path and its permissions");
  const std::vector<PlannedTensor> plan = plan_tensors(tensors, dir);
  std::map<std::string, std::string> metadata = opts.metadata;
  metadata.emplace("format", "pt");

  // Greedy in sorted key order: a new shard starts when the next tensor would overflow this one.
  std::vector<std::vector<const PlannedTensor*>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const PlannedTensor& t : plan) {
    if (opts.max_shard_bytes > 0 && !shards.back().empty() &&
        shard_bytes + t.nbytes > opts.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += t.nbytes;
    total_bytes += t.nbytes;
  }

  const std::string single_name = opts.prefix + kExtension;
  const std::string index_name = opts.prefix + kIndexSuffix;
  std::vector<std::string> written;
  if (shards.size() == 1) {
    write_planned((fs::path(dir) / single_name).string(), shards[0], metadata);
    written.push_back(single_name);
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = shard_name(opts.prefix, i + 1, shards.size());
      write_planned((fs::path(dir) / name).string(), shards[i], metadata);
      for (const PlannedTensor* t : shards[i]) weight_map[t->name] = name;
      written.push_back(name);
    }
    const json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic((fs::path(dir) / index_name).string(), index.dump(2) + "\n");
    written.push_back(index_name);
  }

  // The new layout is complete on disk; only now drop files of an older layout.
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const bool stale_layout_file =
        file == single_name || file == index_name || is_shard_name(file, opts.prefix);
    if (!stale_layout_file || std::find(written.begin(), written.end(), file) != written.end())
      continue;
    std::error_code remove_ec;
    fs::remove(entry.path(), remove_ec);
    if (remove_ec)
      spdlog::warn("{}: cannot remove stale checkpoint file {}: {}", dir, file, remove_ec.message());
  }
  if (ec) spdlog::warn("{}: cannot list directory to remove stale shards: {}", dir, ec.message());
  fsync_dir(dir);
  return written;
}

}  // namespace coordexp::util
