// Fuzzes both directions of the control protocol's text: lbadm's decoder of lbd's replies
// (a decoded dump encodes to text that decodes to the same encoding) and lbd's decoder of
// request arguments (decoded arguments encode back to one line that decodes to them, with
// no newline and no raw control byte in it). No crash either way.
#include <string>
#include <vector>

#include "lb/ctl/control_protocol.hpp"

using namespace lbd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  if (decode_args(text, args)) {
    const std::string line = encode_args(args);
    for (char ch : line)
      if (ch != '\t' && (uint8_t(ch) < 0x20 || ch == 0x7f)) __builtin_trap();
    std::vector<std::string> back;
    if (!decode_args(line, back) || back != args) __builtin_trap();
  }
  Dump d;
  if (!decode_dump(text, d)) return 0;
  const std::string once = encode_dump(d);
  Dump d2;
  if (!decode_dump(once, d2) || encode_dump(d2) != once) __builtin_trap();
  return 0;
}
