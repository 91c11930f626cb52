// `dist:` section — the process-group backend and its timeout for multi-process (torchrun-style
// RANK/WORLD_SIZE) runs. Values only; src/dist creates the process group.
#pragma once

#include <string>

#include "coordexp/config/field.h"

namespace coordexp::config {

struct DistOptions {
  std::string backend = "auto";  // auto (nccl on CUDA, gloo on CPU) | gloo | nccl
  int timeout_s = 1800;          // collective timeout in seconds

  void validate() const {}
};

template <class V>
void visit_fields(V& v, DistOptions& o) {
  v.field(Field("backend", "Collective backend: auto = nccl when training on CUDA, gloo on CPU.")
              .choices({"auto", "gloo", "nccl"}), o.backend);
  v.field(Field("timeout_s", "Timeout of a collective operation, in seconds.").range(1, 86400),
          o.timeout_s);
}

}  // namespace coordexp::config
