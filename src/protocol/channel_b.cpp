// Channel-B y_in construction (see channel_b.h): splice at the append-ready cut, re-tokenize the last
// rollout token reaching the cut together with the appended text, label by character layout.
#include "coordexp/protocol/channel_b.h"

#include "coordexp/protocol/render.h"
#include "coordexp/util/error.h"
#include "labeling.h"

namespace coordexp::protocol {

PrefixMode prefix_mode_from_name(const std::string& name) {
  if (name == "raw") return PrefixMode::kRaw;
  if (name == "canonical") return PrefixMode::kCanonical;
  throw ConfigError("invalid value '" + name + "'", "key channel_b.prefix_mode",
                    "use one of raw|canonical");
}

namespace {

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// One object of y_in as built: where it came from, its subset and geometry kind.
struct Built {
  ObjectOrigin origin;
  ObjectSubset subset = ObjectSubset::kUnassigned;
  GeometryKind geometry = GeometryKind::kBbox;
};

YIn from_answer(TokenizedAnswer a, const std::vector<Built>& objects) {
  COORDEXP_CHECK(a.layout.objects.size() == objects.size());
  YIn y;
  y.text = std::move(a.text);
  y.ids = std::move(a.ids);
  y.layout = std::move(a.layout);
  for (size_t i = 0; i < objects.size(); ++i) {
    y.layout.objects[i].subset = objects[i].subset;
    y.layout.objects[i].geometry = objects[i].geometry;
    y.origins.push_back(objects[i].origin);
  }
  return y;
}

Built fn_object(size_t i, const Object& o) {
  return {{ObjectSource::kInjectedFn, static_cast<int32_t>(i)}, ObjectSubset::kFn, o.kind};
}

Built prefix_object(size_t i, const ParsedEntry& e) {
  return {{ObjectSource::kRolloutPrefix, static_cast<int32_t>(i)},
          e.valid() ? ObjectSubset::kUnassigned : ObjectSubset::kInvalid, e.object.kind};
}

// Freshly rendered y_in: `prefix` (re-rendered valid rollout objects) followed by `fn`.
YIn build_rendered(const ParseResult& rollout, const std::vector<Object>& fn,
                   const tokenizer::Tokenizer& tok, FieldOrder order, bool use_prefix) {
  std::vector<Object> all;
  std::vector<Built> objects;
  if (use_prefix) {
    for (size_t i = 0; i < rollout.num_complete; ++i) {
      if (!rollout.entries[i].valid()) continue;
      all.push_back(rollout.entries[i].object);
      objects.push_back(prefix_object(i, rollout.entries[i]));
    }
  }
  for (size_t i = 0; i < fn.size(); ++i) {
    all.push_back(fn[i]);
    objects.push_back(fn_object(i, fn[i]));
  }
  return from_answer(render_answer(all, tok, order), objects);
}

YIn build_raw(const ParseResult& rollout, const std::vector<Object>& fn,
              const tokenizer::Tokenizer& tok, FieldOrder order) {
  COORDEXP_CHECK(rollout.from_ids, "raw prefix mode needs a rollout parsed from ids");
  const uint32_t cut = rollout.append_cut;
  COORDEXP_CHECK(cut >= 1 && cut <= rollout.text.size());
  std::string text = rollout.text.substr(0, cut);
  std::vector<ObjectChars> fn_chars;
  fn_chars.reserve(fn.size());
  if (rollout.num_complete > 0 && !fn.empty()) text += kEntrySeparator;
  for (size_t i = 0; i < fn.size(); ++i) {
    if (i > 0) text += kEntrySeparator;
    fn_chars.push_back(append_object_record(text, fn[i], order));
  }
  const auto array_close = static_cast<uint32_t>(text.size());
  text += kAnswerClose;

  // The last rollout token reaching the cut (backed up to a character start) is re-tokenized with
  // the appended text.
  const detail::TokenLayout rollout_layout = detail::contiguous_layout(rollout.token_begin);
  int32_t splice = detail::token_at(rollout_layout, cut - 1);
  while (splice > 0 && is_utf8_continuation(rollout.text[rollout.token_begin[splice]])) --splice;
  const uint32_t splice_byte = rollout.token_begin[splice];
  const std::vector<tokenizer::Token> tail =
      tok.encode_with_offsets(std::string_view(text).substr(splice_byte));

  std::vector<tokenizer::TokenId> ids(rollout.ids.begin(), rollout.ids.begin() + splice);
  detail::TokenLayout layout;
  layout.begin.assign(rollout_layout.begin.begin(), rollout_layout.begin.begin() + splice);
  layout.end.assign(rollout_layout.end.begin(), rollout_layout.end.begin() + splice);
  const detail::TokenLayout tail_layout = detail::layout_of(tail, splice_byte);
  layout.begin.insert(layout.begin.end(), tail_layout.begin.begin(), tail_layout.begin.end());
  layout.end.insert(layout.end.end(), tail_layout.end.begin(), tail_layout.end.end());
  for (const auto& t : tail) ids.push_back(t.id);

  std::vector<const ObjectChars*> chars;
  std::vector<Built> objects;
  for (size_t i = 0; i < rollout.num_complete; ++i) {
    chars.push_back(&rollout.entries[i].chars);
    objects.push_back(prefix_object(i, rollout.entries[i]));
  }
  for (size_t i = 0; i < fn.size(); ++i) {
    chars.push_back(&fn_chars[i]);
    objects.push_back(fn_object(i, fn[i]));
  }
  YIn y = from_answer(detail::finish_answer(std::move(text), std::move(ids), layout, chars,
                                            array_close, array_close + 1, tok),
                      objects);
  y.num_rollout_ids_kept = splice;
  return y;
}

}  // namespace

YIn build_y_in(const ParseResult& rollout, const std::vector<Object>& fn_objects,
               const tokenizer::Tokenizer& tok, PrefixMode mode, FieldOrder order) {
  if (!rollout.has_prefix) {
    YIn y = build_rendered(rollout, fn_objects, tok, order, /*use_prefix=*/false);
    y.invalid_rollout = true;
    return y;
  }
  if (mode == PrefixMode::kCanonical)
    return build_rendered(rollout, fn_objects, tok, order, /*use_prefix=*/true);
  return build_raw(rollout, fn_objects, tok, order);
}

}  // namespace coordexp::protocol
