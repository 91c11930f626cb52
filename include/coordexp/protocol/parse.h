// Strict CoordJSON parsing (seed 1.2, 7.2 B1) of generated token ids or of plain text: the top level
// must be `{"objects": [...]}`; every array entry is validated on its own and dropped (never
// repaired) with a reason when it breaks a rule; a rollout cut off mid-way keeps every entry
// completed before the cut. Also finds the append-ready cut used to build Channel-B's y_in
// (channel_b.h). Brace/bracket scanning honours JSON strings and escapes. No LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coordexp/protocol/coordjson.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::protocol {

// Why an entry of the objects array was dropped (a table-driven test has a case for each).
enum class DropReason : uint8_t {
  kNone,                // valid
  kTruncated,           // the text ends inside the entry (unterminated)
  kUnbalanced,          // a `]` closes a `{` (or `}` a `[`): the entry's extent is unknowable
  kInvalidUtf8,         // the entry's brackets balance but its bytes are not valid UTF-8. Checked
                        // before the JSON rules; the entry is complete and scanning goes on. No
                        // invalid byte stops the scan: all such bytes are >= 0x80 and the scanner
                        // only acts on ASCII ({ } [ ] " \), so the extent never depends on them.
  kMalformedJson,       // balanced but not JSON (+ bare coord literals): bad string, missing colon, ...
  kDuplicateKey,        // a key appears twice
  kExtraKey,            // a key other than desc / bbox_2d / poly
  kMissingDesc,         // no desc key
  kDescNotString,       // desc is not a string
  kEmptyDesc,           // desc is empty or only whitespace
  kSpecialTokenInDesc,  // desc contains a special/coord token (id mode) or <|...|> text
  kMissingGeometry,     // neither bbox_2d nor poly
  kTwoGeometries,       // both bbox_2d and poly
  kGeometryNotArray,    // bbox_2d / poly is not an array
  kNonCoordValue,       // a geometry value is not a coord token (number, string, <|coord_1000|>, or
                        // in id mode a coord literal spelled with ordinary text tokens)
  kBadArity,            // after flattening: bbox != 4 values, poly odd or < 6
};
const char* drop_reason_name(DropReason reason);  // snake_case, e.g. "extra_key"
inline constexpr int kNumDropReasons = static_cast<int>(DropReason::kBadArity) + 1;  // kNone included

enum class RolloutStatus : uint8_t {
  kComplete,   // `{"objects": [...]}` closed, only whitespace after it
  kTruncated,  // the text ends before the closing `]}`
  kMalformed,  // after the `{"objects": [` head: garbage between entries, a trailing comma, an
               // unbalanced entry, a second top-level key or text after the closure
  kNoPrefix,   // no `{"objects": [` head: nothing can be appended to (Channel-B: invalid_rollout)
};
const char* rollout_status_name(RolloutStatus status);

// One entry of the objects array, valid or dropped.
struct ParsedEntry {
  DropReason reason = DropReason::kNone;
  std::string detail;      // what exactly was wrong (empty when valid)
  bool complete = false;   // brackets balanced: the entry is part of the append-ready prefix
  Object object;           // valid: the object; dropped: whatever was read (may be partial; the
                           // desc of an invalid_utf8 entry may hold the invalid bytes)
  ObjectChars chars;       // layout in ParseResult::text (record.end = text end when truncated)
  ObjectSpan span;         // id mode only: token spans and coord input positions
  bool valid() const { return reason == DropReason::kNone; }
};

struct ParseResult {
  // What was parsed: the input text, or the concatenated bytes of the ids up to the first EOS
  // (<|im_end|> / <|endoftext|>; text mode: the first "<|im_end|>" / "<|endoftext|>").
  std::string text;
  bool from_ids = false;
  std::vector<tokenizer::TokenId> ids;  // id mode: the ids before the first EOS
  std::vector<uint32_t> token_begin;    // id mode: byte offset of ids[i] in text; back() = text size
  bool ended_with_eos = false;          // an EOS terminated the input

  RolloutStatus status = RolloutStatus::kNoPrefix;
  std::string error;         // structural problem with its byte offset; empty when kComplete
  bool has_prefix = false;   // the `{"objects": [` head was found
  // Entries in order. The complete ones come first (num_complete); at most one incomplete entry
  // (truncated/unbalanced) follows; parsing stops at it.
  std::vector<ParsedEntry> entries;
  size_t num_complete = 0;
  // Append-ready cut: byte offset right after the last complete entry's `}`, or right after the
  // head's `[` when there is none. 0 when !has_prefix.
  uint32_t append_cut = 0;

  size_t num_valid() const;
  std::vector<Object> valid_objects() const;  // in order
};

// Parses plain text (e.g. another model's output). Never throws on any input.
ParseResult parse_text(std::string_view text);

// Parses generated answer ids (without the prompt). Spans and coord positions index into `ids`.
// A geometry value must be a coord token id; a desc must not contain special tokens. Never throws
// on any id sequence of in-vocabulary ids (COORDEXP_CHECK on ids outside the vocabulary).
ParseResult parse_ids(const std::vector<tokenizer::TokenId>& ids, const tokenizer::Tokenizer& tok);

}  // namespace coordexp::protocol
