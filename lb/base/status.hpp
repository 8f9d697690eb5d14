// The control plane's error convention: a code (an errno value, as IPVS returns them, so
// lbadm can print ipvsadm's message for it) and a message an operator can act on.
#pragma once

#include <string>
#include <utility>

namespace lbd {

class Status {
 public:
  Status() = default;
  static Status ok() { return {}; }
  static Status error(int code, std::string message) { return Status(code, std::move(message)); }
  bool is_ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(int code, std::string m) : code_(code), message_(std::move(m)) {}
  int code_ = 0;
  std::string message_;
};

}  // namespace lbd
