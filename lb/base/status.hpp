// The error convention of every layer above forwarding/ and scheduler/: a Status (a code,
// an errno value as IPVS returns them so lbadm can print ipvsadm's message for it, and a
// message an operator can act on), or a Result<T> (the value, or the Status saying why
// there is none). Constructors that acquire a resource (a socket, a program, a file)
// throw instead: an object that exists holds what it names.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lbd {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return {}; }
  static Status error(int code, std::string message) { return Status(code, std::move(message)); }
  // Input that cannot be taken (a bad key, a malformed value): EINVAL.
  static Status invalid(std::string message) { return Status(EINVAL, std::move(message)); }
  bool is_ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // The same failure with what it was about in front: "nftables guard: " + message.
  Status in(std::string_view what) const {
    return is_ok() ? *this : Status(code_, std::string(what) + message_);
  }

 private:
  Status(int code, std::string m) : code_(code), message_(std::move(m)) {}
  int code_ = 0;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  // A failure. (An ok Status carries no value: taken as a failure without a code, EIO.)
  Result(Status error) : v_(error.is_ok() ? Status::error(EIO, error.message()) : std::move(error)) {}
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  // Ok when there is a value.
  Status status() const { return is_ok() ? Status::ok() : std::get<1>(v_); }
  const std::string& message() const {
    static const std::string kNone;
    return is_ok() ? kNone : std::get<1>(v_).message();
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lbd
