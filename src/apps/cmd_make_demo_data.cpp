// `coordexp-train make-demo-data --out DIR --train N --val M [--seed S] [--size 256] [--shapes a,b] [--colours a,b]`: writes the
// built-in demo's detection dataset (shapes in 5 colours on textured backgrounds, tight pixel boxes;
// coordexp/data/demo_shapes.h) as images/ + train.jsonl/val.jsonl in the JSONL contract.
#include <spdlog/spdlog.h>

#include <memory>

#include "apps/commands.h"
#include "coordexp/data/demo_shapes.h"

namespace coordexp::apps {

CommandRegistration add_make_demo_data_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand("make-demo-data",
                                 "Write the demo detection dataset (coloured shapes on textured backgrounds)");
  auto o = std::make_shared<data::DemoShapesOptions>();
  sub->add_option("--out", o->out_dir, "Output folder (images/, train.jsonl, val.jsonl)")->required();
  sub->add_option("--train", o->num_train, "Training records")->capture_default_str();
  sub->add_option("--val", o->num_val, "Validation records")->capture_default_str();
  sub->add_option("--size", o->size, "Image side in pixels (square images)")->capture_default_str();
  sub->add_option("--min-objects", o->min_objects, "Fewest objects per image")->capture_default_str();
  sub->add_option("--max-objects", o->max_objects, "Most objects per image")->capture_default_str();
  sub->add_option("--shapes", o->shapes, "Shapes to draw, a subset of circle,rectangle,triangle,diamond (default: all)")
      ->delimiter(',');
  sub->add_option("--colours", o->colours, "Colours to draw, a subset of red,green,blue,yellow,purple (default: all)")
      ->delimiter(',');
  return {sub, [o, &flags] {
            if (flags.seed >= 0) o->seed = static_cast<uint64_t>(flags.seed);
            const auto r = data::write_demo_shapes_dataset(*o);
            spdlog::info("wrote {} ({} train records), {} ({} val records), {} objects ({} partly hidden), seed {}",
                         r.train_jsonl, o->num_train, r.val_jsonl, o->num_val, r.num_objects, r.num_overlapping, o->seed);
            return 0;
          }};
}

}  // namespace coordexp::apps
