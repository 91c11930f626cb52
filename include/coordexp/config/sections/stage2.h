// `stage2:` section — Stage-2 mixture schedule (Channel-A / Channel-B step routing).
// Empty in this build: its fields arrive with the roadmap step that implements the Stage-2 trainer, so that
// configs can already name the section and the schema mechanism is in place.
#pragma once

namespace coordexp::config {

struct Stage2Options {
  void validate() const {}
};

template <class V>
void visit_fields(V&, Stage2Options&) {}

}  // namespace coordexp::config
