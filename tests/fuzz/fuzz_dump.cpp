// Fuzzes lbadm's decoder of lbd's replies. Checked: no crash, and a decoded dump encodes
// to text that decodes to the same encoding.
#include <string>

#include "lb/control_protocol.hpp"

using namespace lbd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Dump d;
  if (!decode_dump(std::string(reinterpret_cast<const char*>(data), size), d)) return 0;
  const std::string once = encode_dump(d);
  Dump d2;
  if (!decode_dump(once, d2) || encode_dump(d2) != once) __builtin_trap();
  return 0;
}
