// The DNS check's bytes (RFC 1035 §4), built and judged without I/O: a query for one name
// and type, and a reply judged by its ID, RCODE and, if asked, an A record. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "health/result.hpp"

namespace lbd::health {

struct CheckSpec;

// "www.example.org" (a trailing dot allowed, "." the root) in wire form, or "" if it is no
// valid name (an empty label, a label over 63 bytes, over 255 bytes in all).
std::string dns_name_wire(std::string_view name);
std::optional<uint16_t> dns_type_from_name(std::string_view name);  // "A" -> 1
const char* dns_type_name(uint16_t type);                           // 1 -> "A", else "TYPEn"
std::optional<uint8_t> dns_rcode_from_name(std::string_view name);  // "NXDOMAIN" -> 3
const char* dns_rcode_name(uint8_t rcode);

// A standard query, recursion desired, one question of class IN.
std::string dns_query(uint16_t id, const CheckSpec& c);
// Passed, or why not ("rcode NXDOMAIN, expected NOERROR", "no A record 198.18.0.50 in 2
// answers", "reply for another query", "truncated reply").
CheckResult judge_dns(std::string_view reply, uint16_t id, const CheckSpec& c);

}  // namespace lbd::health
