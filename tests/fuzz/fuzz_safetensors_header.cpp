// libFuzzer target for parse_safetensors_header: any input must either parse into a header whose
// tensors tile the data section exactly (and whose shapes give torch-consistent byte counts) or
// throw a FormatError naming the file and ending with a hint. Anything else (crash, sanitizer
// report, other exception type) is a finding. Does not touch the filesystem or the tensor bytes.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace {

constexpr const char* kFile = "fuzz.safetensors";

void check_header(const coordexp::util::StHeader& h, const uint8_t* data, size_t size) {
  uint64_t covered = 0;
  for (const coordexp::util::StTensorInfo& t : h.tensors) {
    if (t.data_begin != covered || t.data_end < t.data_begin) __builtin_trap();
    if (h.data_offset + t.data_end > size) __builtin_trap();
    // torch must agree on the byte count (catches stride/numel overflow the parser missed).
    const auto options = torch::TensorOptions().dtype(coordexp::util::st_dtype_to_torch(t.dtype));
    const torch::Tensor view =
        torch::from_blob(const_cast<uint8_t*>(data + h.data_offset + t.data_begin), t.shape,
                         options);
    if (static_cast<uint64_t>(view.nbytes()) != t.data_end - t.data_begin) __builtin_trap();
    covered = t.data_end;
  }
  if (h.data_offset + covered != size) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    check_header(coordexp::util::parse_safetensors_header(data, size, kFile), data, size);
  } catch (const coordexp::FormatError& e) {
    const std::string message = e.what();
    if (message.rfind(kFile, 0) != 0 || message.back() != ')' || e.hint().empty())
      __builtin_trap();
  }
  return 0;
}
