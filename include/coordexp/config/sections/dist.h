// `dist:` section — multi-process (data-parallel) training launched torchrun-style (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment): the collective backend, the
// timeout of the rendezvous and of every collective, the checkpoint barrier's own timeout and the
// gradient bucket size. Values only;
// src/dist reads the environment and creates the process group.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct DistOptions {
  std::string backend = "auto";  // auto (nccl when training on CUDA, gloo on CPU) | gloo | nccl
  int timeout_s = 1800;          // rendezvous and per-collective timeout, seconds
  int save_timeout_s = 7200;     // how long the other ranks wait while rank 0 writes a checkpoint, seconds
  int bucket_mb = 25;            // gradients are all-reduced in flat buckets of at most this many MiB

  void validate() const {
    if (backend != "auto" && backend != "gloo" && backend != "nccl")
      throw ConfigError("dist.backend is '" + backend + "'", "key dist.backend", "use auto, gloo or nccl");
    if (timeout_s < 1) throw ConfigError("dist.timeout_s must be >= 1", "key dist.timeout_s", "e.g. 1800");
    if (save_timeout_s < 1)
      throw ConfigError("dist.save_timeout_s must be >= 1", "key dist.save_timeout_s", "e.g. 7200");
    if (bucket_mb < 1) throw ConfigError("dist.bucket_mb must be >= 1", "key dist.bucket_mb", "e.g. 25");
  }
};

template <class V>
void visit_fields(V& v, DistOptions& o) {
  v.field(Field("backend", "Collective backend when WORLD_SIZE > 1: auto = nccl when training on "
                           "CUDA (and this LibTorch has NCCL), gloo on CPU.")
              .choices({"auto", "gloo", "nccl"}), o.backend);
  v.field(Field("timeout_s", "Seconds to wait for all ranks to join the rendezvous "
                             "(MASTER_ADDR:MASTER_PORT) and for each collective; a rank that "
                             "died or stalls makes the others fail after this long.").range(1, 86400),
          o.timeout_s);
  v.field(Field("save_timeout_s", "Seconds the other ranks wait at the checkpoint barrier while rank 0 "
                                  "writes a checkpoint (tens of GB for a large model); replaces "
                                  "timeout_s for that wait only.").range(1, 604800),
          o.save_timeout_s);
  v.field(Field("bucket_mb", "Gradients are flattened into buckets of at most this many MiB, one "
                             "all-reduce per bucket (a larger tensor gets its own).").range(1, 4096),
          o.bucket_mb);
}

}  // namespace coordexp::config
