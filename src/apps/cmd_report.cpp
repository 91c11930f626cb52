// `coordexp-train report --run RUN_DIR [--out FILE.html]`: writes a self-contained report.html
// (default RUN_DIR/report.html) from RUN_DIR/metrics.jsonl, RUN_DIR/eval/*.json and
// RUN_DIR/eval/*/metrics.json, and the contact_sheet.png files under RUN_DIR (eval/report.h).
// Exit 0 (1 when RUN_DIR is not a directory or the report cannot be written).
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "coordexp/eval/report.h"
#include "coordexp/util/fs.h"

namespace coordexp::apps {
namespace {

struct ReportArgs {
  std::string run_dir, out;
};

int run_report(const ReportArgs& a) {
  const eval::RunData run = eval::collect_run(a.run_dir);
  const std::string out = a.out.empty() ? (std::filesystem::path(a.run_dir) / "report.html").string() : a.out;
  util::write_file_atomic(out, eval::render_report(run));
  std::cout << "report: " << out << " (" << run.records.size() << " metrics records, " << run.evals.size()
            << " eval result(s), " << run.contact_sheets.size() << " contact sheet(s))\n";
  if (run.bad_metric_lines > 0) std::cout << "  skipped " << run.bad_metric_lines << " unreadable metrics.jsonl line(s)\n";
  for (const auto& f : run.skipped_eval_files) std::cout << "  skipped " << f << " (no \"coco\" object)\n";
  return 0;
}

}  // namespace

CommandRegistration add_report_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<ReportArgs>();
  auto* sub = app.add_subcommand("report", "Write a self-contained report.html for a run: loss curves, "
                                           "Channel-A/B diagnostics, eval tables, contact sheets");
  sub->add_option("--run", args->run_dir, "run directory (train.output_dir)")->required();
  sub->add_option("--out", args->out, "output HTML file (default RUN_DIR/report.html)");
  return {sub, [args] { return run_report(*args); }};
}

}  // namespace coordexp::apps
