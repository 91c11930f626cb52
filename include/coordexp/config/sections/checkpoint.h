// `checkpoint:` section — how often checkpoints are written, how many are kept, resuming, and the
// shard size of the saved safetensors. Values only; the checkpoint manager (src/train) acts on them.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct CheckpointOptions {
  int64_t every = 500;                       // optimizer steps between checkpoints; 0 = only at the end
  int keep_last = 3;                         // newest checkpoints kept on disk; 0 = keep all
  std::string resume = "off";                // off | auto (latest complete in output_dir) | a checkpoint dir
  int64_t max_shard_bytes = 0;               // > 0: re-split saved weights into shards of this size

  void validate() const {
    if (resume.empty())
      throw ConfigError("checkpoint.resume is empty", "checkpoint.resume",
                        "use off, auto, or the path of a checkpoint directory");
  }
};

template <class V>
void visit_fields(V& v, CheckpointOptions& o) {
  v.field(Field("every", "Optimizer steps between checkpoints; 0 = only the final one (a "
                         "checkpoint is always written at the end).").min(0), o.every);
  v.field(Field("keep_last", "Number of newest checkpoints kept; older ones are deleted after a "
                             "new one is complete. 0 = keep all.").min(0), o.keep_last);
  v.field(Field("resume", "off = start fresh; auto = continue from the latest complete checkpoint "
                          "in output_dir (fresh if none); otherwise the path of a checkpoint "
                          "directory. The `train --resume` flag sets auto."), o.resume);
  v.field(Field("max_shard_bytes", "0 = saved models keep the source checkpoint's files (same shards, "
                                   "same index); > 0 = re-split the weights into Hugging Face shards "
                                   "model-0000k-of-0000N.safetensors of at most this many bytes (one "
                                   "model.safetensors when everything fits).").min(0), o.max_shard_bytes);
}

}  // namespace coordexp::config
