// Token constraints for generation: a factory makes one RowConstraint per generated row; before each
// token choice the generator asks the row which ids are allowed and masks the others to -inf, then
// tells the row the id it chose. Used by rollout.constrained (CoordJSON grammar). No LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace coordexp::rollout {

class RowConstraint {
 public:
  virtual ~RowConstraint() = default;
  // allowed_V has one entry per logit row (vocab size), all 1 on entry; set 0 for forbidden ids.
  // Leaving at least one id allowed is the constraint's job.
  virtual void allowed(std::vector<uint8_t>& allowed_V) const = 0;
  // The id chosen for this row (after allowed()).
  virtual void advance(int64_t id) = 0;
};

class ConstraintFactory {
 public:
  virtual ~ConstraintFactory() = default;
  virtual std::unique_ptr<RowConstraint> make_row() const = 0;
};

}  // namespace coordexp::rollout
