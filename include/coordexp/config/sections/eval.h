// `eval:` section — evaluation (COCO-style mAP, F1, diagnostics).
// Empty in this build: its fields arrive with the roadmap step that implements evaluation, so that
// configs can already name the section and the schema mechanism is in place.
#pragma once

namespace coordexp::config {

struct EvalOptions {
  void validate() const {}
};

template <class V>
void visit_fields(V&, EvalOptions&) {}

}  // namespace coordexp::config
