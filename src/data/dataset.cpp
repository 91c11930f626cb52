// DetectionDataset: loading (JSONL validation, prompt-geometry and length checks with the
// on_invalid policy) and sample building (decode + preprocess images, prompt + answer tokens,
// labels, types, spans shifted to full-sequence positions).
#include "coordexp/data/dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <thread>

#include "coordexp/protocol/render.h"
#include "coordexp/tokenizer/chat_format.h"
#include "coordexp/util/error.h"

namespace coordexp::data {

namespace {

// The record's objects in the sequence order of `epoch`, as the renderer takes them.
std::vector<protocol::Object> ordered_objects(const Record& r, const std::vector<size_t>& order) {
  std::vector<protocol::Object> objects;
  objects.reserve(order.size());
  for (const size_t i : order) objects.push_back(r.objects[i].to_protocol());
  return objects;
}

std::string size_text(int64_t width, int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// A record dropped or refused while loading: where, the reason name and the message.
struct LoadProblem {
  std::string reason;
  std::string what;
  std::string hint;
};

std::string too_long_message(int64_t length, int64_t answer_length, int64_t image_tokens, int64_t max_length) {
  return "sample is " + std::to_string(length) + " tokens (answer " + std::to_string(answer_length) +
         ", image tokens " + std::to_string(image_tokens) + "), longer than data.max_length=" +
         std::to_string(max_length);
}
constexpr const char* kTooLongHint = "raise data.max_length, lower preprocess.max_pixels, or split the record";

}  // namespace

protocol::ResponseLayout Sample::response_layout() const {
  protocol::ResponseLayout layout;
  layout.types = answer_types;
  const int64_t p = answer_begin;
  auto local = [p](int64_t pos) { return static_cast<int32_t>(pos - p); };
  for (const SampleObject& o : objects) {
    protocol::ObjectSpan span;
    span.tokens = {local(o.record.begin), local(o.record.end)};
    span.desc = {local(o.desc_tokens.begin), local(o.desc_tokens.end)};
    for (const int64_t c : o.coord_positions) span.coord_positions.push_back(local(c));
    span.geometry = o.kind;
    span.subset = protocol::ObjectSubset::kMatched;
    if (o.kind == protocol::GeometryKind::kBbox) {
      COORDEXP_CHECK(o.c_gt.size() == 4, "bbox with " << o.c_gt.size() << " values");
      span.gt_box = {o.c_gt[0], o.c_gt[1], o.c_gt[2], o.c_gt[3]};
    }
    layout.objects.push_back(std::move(span));
  }
  auto shift = [&](int64_t pos) { return pos < 0 ? int32_t{-1} : local(pos); };
  layout.array_close = shift(array_close);
  layout.object_close = shift(outer_close);
  layout.eos = shift(eos);
  return layout;
}

DatasetOptions DatasetOptions::from_config(const config::DataOptions& data, const config::ProtocolOptions& protocol) {
  DatasetOptions o;
  o.jsonl = JsonlOptions::from_config(data, protocol);
  o.object_order = object_order_from_name(data.object_order);
  o.field_order = protocol::field_order(protocol);
  o.prompt = PromptSpec::from_config(data, protocol);
  o.max_length = data.max_length;
  o.num_threads = std::max(1, data.num_workers);
  return o;
}

DetectionDataset::DetectionDataset(const std::vector<std::string>& jsonl_files, DatasetOptions options,
                                   std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
                                   std::shared_ptr<const model::ImagePreprocessor> preprocessor)
    : options_(std::move(options)), tokenizer_(std::move(tokenizer)), preprocessor_(std::move(preprocessor)) {
  COORDEXP_CHECK(tokenizer_ && preprocessor_, "dataset needs a tokenizer and an image preprocessor");
  if (!tokenizer_->coord_vocab().valid())
    throw ConfigError("the tokenizer has no <|coord_k|> tokens", "key tokenizer.add_coord_tokens",
                      "set tokenizer.add_coord_tokens: true");
  pad_id_ = tokenizer_->endoftext_id();
  const bool skip = options_.jsonl.on_invalid == InvalidPolicy::kSkip;

  // 1. JSONL contract (jsonl.h applies on_invalid to the rules it checks).
  std::vector<Record> candidates;
  for (const std::string& file : jsonl_files) {
    JsonlFile f = read_jsonl(file, options_.jsonl);
    report_.files.push_back(file);
    report_.num_lines += f.summary.num_lines - f.summary.num_blank_lines;
    for (const auto& [rule, n] : f.summary.invalid_by_rule) report_.invalid[rule] += n;
    for (const auto& e : f.summary.first_errors)
      if (report_.first_errors.size() < JsonlSummary::kMaxListedErrors) report_.first_errors.push_back(e);
    report_.fixes.swapped_boxes += f.summary.fixes.swapped_boxes;
    report_.fixes.clamped_coords += f.summary.fixes.clamped_coords;
    for (auto& r : f.records) candidates.push_back(std::move(r));
  }

  // 2. Checks that need the prompt, the preprocessor and the tokenizer; lengths in parallel.
  const size_t n = candidates.size();
  std::vector<std::optional<LoadProblem>> problems(n);
  std::vector<int64_t> lengths(n, 0);
  for (const Record& r : candidates) {
    const size_t num_images = r.images.size();
    if (prompt_base_length_.count(num_images)) continue;
    const std::vector<int> one_pad_each(num_images, 1);
    prompt_base_length_[num_images] = static_cast<int64_t>(
        tokenizer::build_chat_prompt(*tokenizer_, detection_chat_prompt(options_.prompt, one_pad_each)).ids.size());
  }
  auto check_record = [&](size_t i) {
    const Record& r = candidates[i];
    for (size_t k = 0; k < r.objects.size(); ++k)
      if (!prompt_allows(options_.prompt.geometry, r.objects[k].kind)) {
        problems[i] = LoadProblem{kReasonGeometryNotInPrompt,
                                  "objects[" + std::to_string(k) + "] is a " +
                                      protocol::geometry_key(r.objects[k].kind) +
                                      " but data.prompt_geometry announces another geometry",
                                  "set data.prompt_geometry to bbox_or_poly (or match the data)"};
        return;
      }
    std::vector<int> pads;
    int64_t image_tokens = 0;
    try {
      for (size_t k = 0; k < r.images.size(); ++k) {
        const model::ImageGeometry g = preprocessor_->plan({r.height, r.width}, r.images[k]);
        pads.push_back(static_cast<int>(g.num_image_tokens));
        image_tokens += g.num_image_tokens;
      }
    } catch (const DataError& e) {
      problems[i] = LoadProblem{kReasonImageUnusable, e.what(), "fix or drop the image"};
      return;
    }
    const auto order = object_order(r.objects, options_.object_order, r.sample_key, 0);
    const auto answer = protocol::render_answer(ordered_objects(r, order), *tokenizer_, options_.field_order);
    const int64_t answer_length = static_cast<int64_t>(answer.ids.size());
    lengths[i] = prompt_length(pads) + answer_length;
    if (lengths[i] > options_.max_length)
      problems[i] = LoadProblem{kReasonTooLong,
                                too_long_message(lengths[i], answer_length, image_tokens, options_.max_length),
                                kTooLongHint};
  };
  const size_t num_threads = std::min<size_t>(std::max(1, options_.num_threads), std::max<size_t>(1, n / 64));
  std::vector<std::exception_ptr> errors(num_threads);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < num_threads; ++t)
    threads.emplace_back([&, t] {
      try {
        for (size_t i = t; i < n; i += num_threads) check_record(i);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);

  // 3. Policy, in file order (deterministic first error).
  int64_t num_dropped_here = 0;
  for (size_t i = 0; i < n; ++i) {
    Record& r = candidates[i];
    if (problems[i]) {
      const LoadProblem& p = *problems[i];
      if (!skip) throw DataError(p.what + " [reason " + p.reason + "]", r.source, p.hint);
      ++report_.invalid[p.reason];
      ++num_dropped_here;
      if (report_.first_errors.size() < JsonlSummary::kMaxListedErrors)
        report_.first_errors.push_back(r.source + ": " + p.what + " [reason " + p.reason + "]");
      continue;
    }
    report_.num_objects += static_cast<int64_t>(r.objects.size());
    lengths_.push_back(lengths[i]);
    records_.push_back(std::move(r));
  }
  report_.num_samples = size();
  if (num_dropped_here > 0)
    spdlog::warn("data: dropped {} record(s) at load (data.on_invalid=skip) for prompt geometry, image size or "
                 "length; see the data_invalid_* counters",
                 num_dropped_here);
  spdlog::info("data: {} sample(s) from {} file(s), {} object(s)", report_.num_samples, jsonl_files.size(),
               report_.num_objects);
}

const Record& DetectionDataset::record(int64_t index) const {
  COORDEXP_CHECK(index >= 0 && index < size(), "sample index " << index << " outside [0, " << size() << ")");
  return records_[static_cast<size_t>(index)];
}

int64_t DetectionDataset::sequence_length(int64_t index) const {
  record(index);  // range check
  return lengths_[static_cast<size_t>(index)];
}

int64_t DetectionDataset::prompt_length(const std::vector<int>& pads) const {
  const auto it = prompt_base_length_.find(pads.size());
  COORDEXP_CHECK(it != prompt_base_length_.end(), "no prompt length for " << pads.size() << " image(s)");
  int64_t length = it->second;
  for (const int p : pads) length += p - 1;
  return length;
}

SampleResult DetectionDataset::try_get(int64_t index, int64_t epoch) const {
  const Record& r = record(index);
  SampleResult out;
  auto fail = [&](const char* reason, const std::string& what, const std::string& hint) {
    out.reason = reason;
    out.message = DataError(what + " [reason " + reason + "]", r.source, hint).what();
    return out;
  };

  // Images: decode, check against the record's size (its coordinates were normalized by it).
  std::vector<torch::Tensor> rgb;
  for (size_t k = 0; k < r.images.size(); ++k) {
    const std::string label = "image " + std::to_string(k + 1) + " (" + r.images[k] + ")";
    try {
      rgb.push_back(model::load_rgb_image(r.images[k]));
    } catch (const DataError& e) {
      return fail(kReasonImageUnreadable, label + ": " + e.message(), "replace the file or drop the record");
    }
    const int64_t h = rgb.back().size(0), w = rgb.back().size(1);
    if (h != r.height || w != r.width)
      return fail(kReasonImageSizeMismatch,
                  label + " is " + size_text(w, h) + " but the record says " + size_text(r.width, r.height),
                  "fix width/height: the displayed size, EXIF orientation applied (the coordinates are "
                  "normalized by it)");
  }
  model::PreprocessedImages images;
  try {
    images = (*preprocessor_)(rgb, r.images);
  } catch (const DataError& e) {
    return fail(kReasonImageUnusable, e.what(), "fix or drop the image");
  }

  SampleResult built = build_tokens(index, epoch, images.images);
  if (built.sample) {
    built.sample->pixel_values = std::move(images.pixel_values);
    built.sample->image_grid_thw = std::move(images.image_grid_thw);
  }
  return built;
}

SampleResult DetectionDataset::try_get_tokens(int64_t index, int64_t epoch) const {
  const Record& r = record(index);
  std::vector<model::ImageGeometry> images;
  try {
    for (const std::string& image : r.images) images.push_back(preprocessor_->plan({r.height, r.width}, image));
  } catch (const DataError& e) {
    SampleResult out;
    out.reason = kReasonImageUnusable;
    out.message = DataError(e.what() + std::string(" [reason ") + kReasonImageUnusable + "]", r.source,
                            "fix or drop the image").what();
    return out;
  }
  SampleResult built = build_tokens(index, epoch, images);
  if (built.sample) built.sample->pixel_values = torch::zeros({0, 0}, torch::kFloat32);
  return built;
}

SampleResult DetectionDataset::build_tokens(int64_t index, int64_t epoch,
                                            const std::vector<model::ImageGeometry>& images) const {
  const Record& r = record(index);
  SampleResult out;
  auto fail = [&](const char* reason, const std::string& what, const std::string& hint) {
    out.reason = reason;
    out.message = DataError(what + " [reason " + reason + "]", r.source, hint).what();
    return out;
  };
  // Tokens: the generation prompt followed by the answer tokenized on its own. The prompt ends with
  // "assistant\n" and the answer starts with `{`, so tokenizing both at once gives the same ids
  // (tests check it against one encode of the whole text).
  std::vector<int> pads;
  int64_t image_tokens = 0;
  for (const auto& g : images) {
    pads.push_back(static_cast<int>(g.num_image_tokens));
    image_tokens += g.num_image_tokens;
  }
  const tokenizer::ChatSequence prompt =
      tokenizer::build_chat_prompt(*tokenizer_, detection_chat_prompt(options_.prompt, pads));
  const std::vector<size_t> order = object_order(r.objects, options_.object_order, r.sample_key, epoch);
  const protocol::TokenizedAnswer answer =
      protocol::render_answer(ordered_objects(r, order), *tokenizer_, options_.field_order);
  const auto p = static_cast<int64_t>(prompt.ids.size());
  const auto answer_length = static_cast<int64_t>(answer.ids.size());
  if (p + answer_length > options_.max_length)
    return fail(kReasonTooLong, too_long_message(p + answer_length, answer_length, image_tokens, options_.max_length),
                kTooLongHint);

  Sample s;
  s.index = index;
  s.epoch = epoch;
  s.source = r.source;
  s.image_grid_thw = torch::zeros({static_cast<int64_t>(images.size()), 3}, torch::kInt64);
  auto grid = s.image_grid_thw.accessor<int64_t, 2>();
  for (size_t k = 0; k < images.size(); ++k)
    for (size_t d = 0; d < 3; ++d) grid[static_cast<int64_t>(k)][static_cast<int64_t>(d)] = images[k].grid_thw[d];
  for (const auto& g : images) s.image_token_counts.push_back(g.num_image_tokens);
  s.input_ids = prompt.ids;
  s.input_ids.insert(s.input_ids.end(), answer.ids.begin(), answer.ids.end());
  s.labels.assign(static_cast<size_t>(p), kIgnoreLabel);
  s.labels.insert(s.labels.end(), answer.ids.begin(), answer.ids.end());
  s.answer_begin = p;
  s.answer_types = answer.layout.types;
  COORDEXP_CHECK(answer.layout.objects.size() == order.size(), "renderer returned " << answer.layout.objects.size()
                                                                             << " spans for " << order.size()
                                                                             << " objects");
  for (size_t j = 0; j < order.size(); ++j) {
    const GtObject& gt = r.objects[order[j]];
    const protocol::ObjectSpan& span = answer.layout.objects[j];
    SampleObject o;
    o.record_object = order[j];
    o.desc = gt.desc;
    o.kind = gt.kind;
    for (const auto& c : gt.coords) {
      o.bins.push_back(c.bin);
      o.c_gt.push_back(c.c_gt);
    }
    o.record = {p + span.tokens.begin, p + span.tokens.end};
    o.desc_tokens = {p + span.desc.begin, p + span.desc.end};
    for (const int32_t c : span.coord_positions) o.coord_positions.push_back(p + c);
    COORDEXP_CHECK(o.coord_positions.size() == o.bins.size(),
                   "" << r.source << ": object " << order[j] << " has " << o.coord_positions.size()
                            << " coord positions for " << o.bins.size() << " values");
    s.objects.push_back(std::move(o));
  }
  auto full = [p](int32_t answer_index) { return answer_index < 0 ? int64_t{-1} : p + answer_index; };
  s.array_close = full(answer.layout.array_close);
  s.outer_close = full(answer.layout.object_close);
  s.eos = full(answer.layout.eos);
  out.sample = std::move(s);
  return out;
}

Sample DetectionDataset::get(int64_t index, int64_t epoch) const {
  SampleResult r = try_get(index, epoch);
  if (!r.sample) throw DataError(r.message);
  return std::move(*r.sample);
}

}  // namespace coordexp::data
