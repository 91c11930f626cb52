// `coordexp-train make-synthetic-data --out DIR`: writes a tiny shapes dataset (PNG images of colored
// rectangles/circles + train.jsonl/val.jsonl with exact boxes) for demos and smoke runs. The
// generator lives in coordexp/data/synthetic.h.
#include <spdlog/spdlog.h>

#include <memory>

#include "apps/commands.h"
#include "coordexp/data/synthetic.h"

namespace coordexp::apps {

CommandRegistration add_make_synthetic_data_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand("make-synthetic-data",
                                 "Write a tiny synthetic detection dataset (shapes on a plain background)");
  auto o = std::make_shared<data::SyntheticDataOptions>();
  sub->add_option("--out", o->out_dir, "Output folder (images/, train.jsonl, val.jsonl)")->required();
  sub->add_option("--num-train", o->num_train, "Training records")->capture_default_str();
  sub->add_option("--num-val", o->num_val, "Validation records")->capture_default_str();
  sub->add_option("--width", o->width, "Image width in pixels")->capture_default_str();
  sub->add_option("--height", o->height, "Image height in pixels")->capture_default_str();
  sub->add_option("--max-objects", o->max_objects, "Objects per image: 1..N")->capture_default_str();
  return {sub, [o, &flags] {
            if (flags.seed >= 0) o->seed = static_cast<uint64_t>(flags.seed);
            const auto r = data::write_synthetic_dataset(*o);
            spdlog::info("wrote {} ({} train records), {} ({} val records), {} objects", r.train_jsonl, o->num_train,
                         r.val_jsonl, o->num_val, r.num_objects);
            return 0;
          }};
}

}  // namespace coordexp::apps
