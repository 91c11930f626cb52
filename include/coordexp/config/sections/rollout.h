// `rollout:` section — autoregressive generation (decoding, sampling, constrained parsing).
// Empty in this build: its fields arrive with the roadmap step that implements rollout generation, so that
// configs can already name the section and the schema mechanism is in place.
#pragma once

namespace coordexp::config {

struct RolloutOptions {
  void validate() const {}
};

template <class V>
void visit_fields(V&, RolloutOptions&) {}

}  // namespace coordexp::config
