// Fuzzes what health checks read from the outside: --health specifications (an accepted
// one's canonical form must parse back to the same configuration) and what a checked
// server may send back (HTTP responses, DNS replies, MySQL greetings, login replies,
// result sets).
#include <cstdint>
#include <string>
#include <vector>

#include "health/dns.hpp"
#include "health/protocols.hpp"
#include "health/spec.hpp"

using namespace lbd::health;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (const auto h = parse_service_health(text)) {
    const std::string c = format_service_health(*h);
    if (!c.empty()) {
      const auto again = parse_service_health(c);
      if (!again || !(*again == *h)) __builtin_trap();
    }
  }
  if (const auto canonical = parse_real_health(text)) {
    if (!canonical->empty()) {
      const auto twice = parse_real_health(*canonical);
      if (!twice || *twice != *canonical) __builtin_trap();
    }
    (void)effective_check(CheckSpec{}, *canonical);
  }
  CheckSpec c;
  c.body = "ok";
  (void)judge_http(text, c);
  // A DNS reply (any bytes a server may send back), judged with an answer= to look for.
  c.query = "lab.example";
  c.answer = "198.18.0.50";
  if (size >= 2) (void)judge_dns(text, uint16_t(data[0] << 8 | data[1]), c);
  const std::vector<uint8_t> bytes(data, data + size);
  (void)parse_greeting(bytes);
  std::optional<std::string> sw;
  (void)judge_login_reply(bytes, sw);
  // Result-set packets: the input cut at every 0x00 0x00 pair.
  std::vector<std::vector<uint8_t>> packets(1);
  for (size_t i = 0; i < size; ++i) {
    if (i + 1 < size && data[i] == 0 && data[i + 1] == 0) {
      packets.emplace_back();
      ++i;
      continue;
    }
    packets.back().push_back(data[i]);
  }
  if (const auto rs = parse_result_set(packets)) (void)judge_replica(*rs, 5);
  return 0;
}
