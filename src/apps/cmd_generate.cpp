// `coordexp-train generate --model DIR --image IMG [--prompt TEXT] [--config run.yaml [--set k=v ...]]
// [--max-new-tokens N]`: one image through the trainer's detection prompt (data/prompt.h), the
// model's image preprocessing and rollout::generate (rollout.* options); prints the decoded answer,
// the finish reason and speed, and the parsed objects (protocol/parse.h) with their confidence
// scores (rollout/scoring.h) when the answer has the CoordJSON head. Exit 0 on success (whatever
// the model generated), 2 for a bad command line/config.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/data/prompt.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/rollout/coordjson_constraint.h"
#include "coordexp/rollout/generator.h"
#include "coordexp/rollout/scoring.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

struct GenerateArgs {
  std::string model_dir, image, prompt;
  ConfigArgs config;
  int max_new_tokens = 0;  // 0: rollout.max_new_tokens
};

config::RunConfig resolve_run_config(const GenerateArgs& a, const GlobalFlags& flags) {
  config::RunConfig cfg;
  if (!a.config.path.empty()) {
    cfg = config::read_options<config::RunConfig>(resolve_config_tree(a.config, flags));
  } else if (!a.config.sets.empty()) {
    throw ConfigError("--set needs --config", "generate --set", "add --config run.yaml");
  }
  if (!a.model_dir.empty()) cfg.model.path = a.model_dir;
  if (cfg.model.path.empty())
    throw ConfigError("no model", "generate --model", "pass --model DIR (or model.path in --config)");
  if (!a.prompt.empty()) cfg.data.prompt_user = a.prompt;
  if (a.max_new_tokens != 0) {
    if (a.max_new_tokens < 0)
      throw ConfigError("must be >= 1, got " + std::to_string(a.max_new_tokens), "generate --max-new-tokens");
    cfg.rollout.max_new_tokens = a.max_new_tokens;
  }
  cfg.model.validate();
  cfg.data.validate();
  cfg.protocol.validate();
  cfg.rollout.validate();
  return cfg;
}

void print_parsed(const protocol::ParseResult& parsed, const std::vector<double>& scores) {
  std::cout << "parse: " << protocol::rollout_status_name(parsed.status) << ", " << parsed.num_valid()
            << " valid object(s) of " << parsed.entries.size() << "\n";
  for (size_t i = 0; i < parsed.entries.size(); ++i) {
    const auto& e = parsed.entries[i];
    std::cout << "  " << (e.valid() ? "" : "dropped (") << (e.valid() ? "" : protocol::drop_reason_name(e.reason))
              << (e.valid() ? "" : ") ") << protocol::geometry_key(e.object.kind) << " [";
    for (size_t i = 0; i < e.object.bins.size(); ++i) std::cout << (i ? ", " : "") << e.object.bins[i];
    std::cout << "] \"" << e.object.desc << "\" score " << scores[i] << "\n";
  }
}

int run_generate(const GenerateArgs& a, const GlobalFlags& flags) {
  const config::RunConfig cfg = resolve_run_config(a, flags);
  const std::string tok_dir = cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path;
  auto tok = tokenizer::Tokenizer::from_dir(tok_dir);
  if (cfg.tokenizer.add_coord_tokens) tok->ensure_coord_tokens();
  auto options = rollout::GenerationOptions::from_config(cfg.rollout, *tok);

  const auto preprocessor = model::ImagePreprocessor::from_model_dir(cfg.model.path, cfg.preprocess);
  const model::PreprocessedImages images = preprocessor({model::load_rgb_image(a.image)}, {a.image});
  std::vector<int> pads;
  for (const auto& g : images.images) pads.push_back(static_cast<int>(g.num_image_tokens));
  const auto spec = data::PromptSpec::from_config(cfg.data, cfg.protocol);
  const tokenizer::ChatSequence prompt = tokenizer::build_chat_prompt(*tok, data::detection_chat_prompt(spec, pads));

  auto model = model::Qwen3VL::load(cfg.model.path, model::ModelRuntime::from_options(cfg.model));
  model.module()->eval();
  std::unique_ptr<rollout::ConstraintFactory> constraint;  // rollout.constrained: CoordJSON grammar
  if (cfg.rollout.constrained) {
    constraint = rollout::make_coordjson_constraint(
        *tok, rollout::CoordJsonConstraintOptions::from_config(cfg.protocol, cfg.data, model.config().text.vocab_size));
    options.constraint = constraint.get();
  }
  rollout::GenerationRequest request;
  request.prompts.emplace_back(prompt.ids.begin(), prompt.ids.end());
  request.pixel_values = images.pixel_values;
  request.image_grid_thw = images.image_grid_thw;
  const rollout::GenerationResult result = rollout::generate(model, request, options);
  const rollout::GeneratedRow& row = result.rows.at(0);
  const rollout::GenerationStats& st = result.stats;

  const std::vector<tokenizer::TokenId> ids(row.ids.begin(), row.ids.end());
  std::vector<tokenizer::TokenId> answer = ids;
  if (row.finish == rollout::FinishReason::kEos) answer.pop_back();
  std::cout << tok->decode(answer) << "\n";
  std::cout << "finish: " << rollout::finish_reason_name(row.finish) << " after " << ids.size()
            << " new token(s); prompt " << prompt.ids.size() << " tokens (" << st.prefill_seconds
            << " s prefill), decode " << st.decode_tokens_per_second() << " tokens/s\n";
  const protocol::ParseResult parsed = protocol::parse_ids(ids, *tok);
  if (parsed.has_prefix) print_parsed(parsed, rollout::object_scores(parsed, row.raw_logprobs));
  else std::cout << "parse: no {\"objects\": [ head (not CoordJSON)\n";
  return 0;
}

}  // namespace

CommandRegistration add_generate_command(CLI::App& app, const GlobalFlags& flags) {
  auto args = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "Detect objects in one image: the training prompt, "
                                             "autoregressive generation (rollout.*), the decoded and parsed answer");
  sub->add_option("--model", args->model_dir, "Hugging Face model directory (default: model.path of --config)");
  sub->add_option("--image", args->image, "image file")->required();
  sub->add_option("--prompt", args->prompt, "user text instead of data.prompt_user ({format} expands as there)");
  sub->add_option("--config", args->config.path, "run config YAML (model, tokenizer, data prompt, preprocess, rollout)");
  sub->add_option("--set", args->config.sets, "Override a config key: --set rollout.decoding=sample (repeatable)");
  sub->add_option("--max-new-tokens", args->max_new_tokens, "overrides rollout.max_new_tokens");
  return {sub, [args, &flags] { return run_generate(*args, flags); }};
}

}  // namespace coordexp::apps
