// Channel-B sequence building (seed 7.2 B3, 10.1.2): from a parsed rollout and the GT objects that
// matching left unmatched (FN), builds the teacher-forced answer
//   y_in = append-ready prefix + (", " iff the prefix has an entry and FN is non-empty)
//          + FN records (rendered exactly like y_GT, in the order given) + "]}" + <|im_end|>
// with token types and a span for every object. Rollout text after the append-ready cut, including
// any text after the rollout's own closure and its <|im_end|>, is dropped and replaced by
// "]}" + <|im_end|>. Matching and masks are not here. No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "coordexp/protocol/coordjson.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::protocol {

// channel_b.prefix_mode. kRaw (seed default): the prefix is the rollout's own ids up to the cut,
// invalid-but-complete entries included (masked like FP). kCanonical: the valid parsed objects are
// re-rendered with the renderer and the invalid entries are left out.
enum class PrefixMode : uint8_t { kRaw, kCanonical };
// "raw" | "canonical"; throws ConfigError naming channel_b.prefix_mode otherwise.
PrefixMode prefix_mode_from_name(const std::string& name);

enum class ObjectSource : uint8_t { kRolloutPrefix, kInjectedFn };

// Where an object of y_in came from.
struct ObjectOrigin {
  ObjectSource source = ObjectSource::kRolloutPrefix;
  // kRolloutPrefix: index into ParseResult::entries; kInjectedFn: index into the fn_objects given.
  int32_t index = 0;
};

struct YIn {
  std::string text;                     // y_in text without <|im_end|>
  std::vector<tokenizer::TokenId> ids;  // y_in answer ids; the last one is <|im_end|>
  // Types, object spans (sequence order: prefix entries, then FN objects) and the top-level closure
  // tokens, ready for the rollout-context mask builder (coord/masks.h). Prefix objects are
  // kUnassigned (valid entries: matching sets kMatched / kFp) or kInvalid; injected ones kFn.
  // gt_box is left for the caller (the matched / FN GT boxes).
  ResponseLayout layout;
  std::vector<ObjectOrigin> origins;    // one per layout.objects
  // ids[0, num_rollout_ids_kept) are the rollout's own ids verbatim (kRaw); the rest are what the
  // tokenizer gives for the spliced text: the retained part of the last rollout token reaching the
  // cut + ", " + FN records + "]}" (so no unseen sequence such as `]},` followed by `, `).
  int32_t num_rollout_ids_kept = 0;
  // The rollout had no `{"objects": [` head: y_in is the canonical empty prefix + all FN.
  bool invalid_rollout = false;
};

// Builds y_in. `rollout` comes from parse_ids (kRaw needs its ids; kCanonical also accepts
// parse_text results). `fn_objects` must satisfy append_object_record's precondition and be in GT
// canonical order (sorted or as_is, never random: see coordexp/data/jsonl.h).
YIn build_y_in(const ParseResult& rollout, const std::vector<Object>& fn_objects,
               const tokenizer::Tokenizer& tok, PrefixMode mode, FieldOrder order);

}  // namespace coordexp::protocol
