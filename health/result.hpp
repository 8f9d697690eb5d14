// A check's verdict: passed, or failed with why. Never "an empty string means up": a
// failure always carries its reason and a pass cannot be read as one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lbd::health {

class CheckResult {
 public:
  static CheckResult pass() { return CheckResult(); }
  static CheckResult fail(std::string why) {
    CheckResult r;
    r.why_ = std::move(why);
    return r;
  }
  bool passed() const { return !why_; }
  // Why it failed ("" when it passed).
  const std::string& why() const { return why_ ? *why_ : kNone; }
  // A step's failure named by its step ("login: " + why), or the pass as it is.
  CheckResult in_step(std::string_view step) const { return passed() ? *this : fail(std::string(step) + *why_); }
  friend bool operator==(const CheckResult&, const CheckResult&) = default;

 private:
  static inline const std::string kNone;
  std::optional<std::string> why_;
};

}  // namespace lbd::health
