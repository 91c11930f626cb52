// RunConfig: every section of a coordexp run in one struct, listed once in visit_fields — adding a
// section is one member plus one v.section line. No YAML here (see schema.h / tree.h for loading);
// modules include the section headers they need, the trainer gets the whole RunConfig.
#pragma once

#include <string>

#include "coordexp/config/sections/actor.h"
#include "coordexp/config/sections/adapter.h"
#include "coordexp/config/sections/channel_a.h"
#include "coordexp/config/sections/channel_b.h"
#include "coordexp/config/sections/checkpoint.h"
#include "coordexp/config/sections/coord.h"
#include "coordexp/config/sections/data.h"
#include "coordexp/config/sections/dist.h"
#include "coordexp/config/sections/eval.h"
#include "coordexp/config/sections/infer.h"
#include "coordexp/config/sections/log.h"
#include "coordexp/config/sections/loss.h"
#include "coordexp/config/sections/model.h"
#include "coordexp/config/sections/optim.h"
#include "coordexp/config/sections/preprocess.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/config/sections/rollout.h"
#include "coordexp/config/sections/stage2.h"
#include "coordexp/config/sections/tokenizer.h"
#include "coordexp/config/sections/train.h"

namespace coordexp::config {

struct RunConfig {
  ModelOptions model;
  AdapterOptions adapter;
  TokenizerOptions tokenizer;
  DataOptions data;
  ProtocolOptions protocol;
  PreprocessOptions preprocess;
  CoordOptions coord;
  LossOptions loss;
  TrainOptions train;
  OptimOptions optim;
  CheckpointOptions checkpoint;
  LogOptions log;
  DistOptions dist;
  Stage2Options stage2;
  ChannelAOptions channel_a;
  ChannelBOptions channel_b;
  ActorOptions actor;
  RolloutOptions rollout;
  EvalOptions eval;
  InferOptions infer;
};

template <class V>
void visit_fields(V& v, RunConfig& c) {
  v.section("train", "The training loop: run directory, length, batch shape, cadence of logging "
                     "and validation, device and precision.", c.train);
  v.section("optim", "AdamW, the learning-rate schedule, gradient clipping, and per-group "
                     "multipliers or freezing for the vision tower, mergers, language model and "
                     "coord-token rows.", c.optim);
  v.section("checkpoint", "Checkpoint cadence, retention, resuming and shard size.", c.checkpoint);
  v.section("log", "Log level, metrics file and progress display. The log itself always goes to "
                   "the console and `output_dir/train.log` (rank k > 0: `train.rank<k>.log`).",
            c.log);
  v.section("dist", "Multi-process training (torchrun-style RANK / WORLD_SIZE / MASTER_ADDR "
                    "environment).", c.dist);
  v.section("model", "The Qwen3-VL checkpoint to train and how it runs (parameter dtype, device, "
                     "attention, gradient checkpointing).", c.model);
  v.section("adapter", "Parameter-efficient training: LoRA / DoRA adapters on the linear maps and the "
                       "coord-offset table (docs/adapters.md). With either on, the base weights are frozen.",
            c.adapter);
  v.section("tokenizer", "The Qwen byte-level BPE tokenizer and its coord vocabulary.", c.tokenizer);
  v.section("data", "The JSONL datasets (see docs/data/JSONL_CONTRACT.md) and the bad-data policy.",
            c.data);
  v.section("protocol", "CoordJSON answer format and pixel/bin coordinate conventions.", c.protocol);
  v.section("preprocess", "Image preprocessing (smart_resize, resize mode, pixel budget).", c.preprocess);
  v.section("coord", "CoordExp decoding of coordinates from the coord-token logits.", c.coord);
  v.section("loss", "The Unified Loss Registry: token CE weights by type, coord distribution "
                    "losses and box geometry losses.", c.loss);
  v.section("stage2", "Stage-2 mixture schedule: which optimizer steps are Channel-A and which are "
                      "Channel-B (the step router, docs/training.md).", c.stage2);
  v.section("channel_a", "Channel-A soft self-context: N full forwards with coord-slot embeddings "
                         "replaced by the model's own coord belief.", c.channel_a);
  v.section("channel_b", "Channel-B: rollout, strict parse, Hungarian matching with gates (channel_b.matching), "
                         "FN injection and the one teacher-forced forward.", c.channel_b);
  v.section("actor", "The asynchronous Channel-B rollout actor (channel_b.producer: async): when its weight "
                     "snapshot is refreshed from the learner.", c.actor);
  v.section("rollout", "Autoregressive generation: greedy or temperature / top-k / top-p sampling, "
                       "stop tokens, batch size, repetition penalty, beam search, constrained decoding (`generate`, "
                       "`infer`, Channel-B rollouts).", c.rollout);
  v.section("infer", "`coordexp-train infer`: how predicted coordinates are read out of the generated "
                     "coord tokens, and progress reporting (generation itself is `rollout`).", c.infer);
  v.section("eval", "Train-time detection evaluation (infer + COCO-style eval on data.val_jsonl at "
                    "each validation pass); `coordexp-train eval` scores prediction files.", c.eval);
}

// The Markdown committed as docs/config.md (`coordexp-train config-docs` prints it).
std::string config_reference_markdown();

}  // namespace coordexp::config
