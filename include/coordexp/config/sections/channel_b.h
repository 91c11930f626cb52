// `channel_b:` section — Channel-B rollout + Hungarian + FN injection one-pass update.
// Empty in this build: its fields arrive with the roadmap step that implements Channel-B, so that
// configs can already name the section and the schema mechanism is in place.
#pragma once

namespace coordexp::config {

struct ChannelBOptions {
  void validate() const {}
};

template <class V>
void visit_fields(V&, ChannelBOptions&) {}

}  // namespace coordexp::config
