// `channel_a:` section — Channel-A soft self-context (n_softctx_iter, grad mode, embed/decode modes).
// Empty in this build: its fields arrive with the roadmap step that implements Channel-A, so that
// configs can already name the section and the schema mechanism is in place.
#pragma once

namespace coordexp::config {

struct ChannelAOptions {
  void validate() const {}
};

template <class V>
void visit_fields(V&, ChannelAOptions&) {}

}  // namespace coordexp::config
