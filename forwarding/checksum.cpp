// Checksum arithmetic; see checksum.hpp. The only place a checksum formula is written.
#include "forwarding/checksum.hpp"

namespace lbd::csum {

uint64_t accumulate(std::span<const uint8_t> data, uint64_t acc) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  // 8 bytes at a time into a 64-bit accumulator: big-endian 16-bit words summed in any
  // grouping give the same folded result, as long as carries are kept (they are, in 64 bits
  // for any frame we handle).
  while (n >= 8) {
    uint64_t w = 0;
    for (int i = 0; i < 8; i += 2) w += uint64_t(p[i]) << 8 | p[i + 1];
    acc += w;
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    acc += uint64_t(p[0]) << 8 | p[1];
    p += 2;
    n -= 2;
  }
  if (n) acc += uint64_t(p[0]) << 8;
  return acc;
}

uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

uint16_t ipv4_header(std::span<const uint8_t> header) {
  uint64_t acc = accumulate(header);
  acc += 0xffff - ((uint64_t(header[10]) << 8) | header[11]);  // remove the stored check field
  return uint16_t(~fold(acc));
}

// Both families' pseudo-headers are the same sum: the addresses' 16-bit words, the
// protocol (IPv6: next header) and the upper-layer length (IPv6's 32-bit field holds it).
static uint64_t address_words(const IpAddr& a) {
  uint64_t acc = 0;
  for (size_t i = a.v6() ? 0 : 12; i < 16; i += 2) acc += uint64_t(a.b[i]) << 8 | a.b[i + 1];
  return acc;
}

uint64_t pseudo_header(const IpAddr& saddr, const IpAddr& daddr, uint8_t protocol, uint16_t l4_len) {
  return address_words(saddr) + address_words(daddr) + protocol + l4_len;
}

uint16_t l4_full(const IpAddr& saddr, const IpAddr& daddr, uint8_t protocol, std::span<const uint8_t> segment,
                 size_t check_offset) {
  uint64_t acc = pseudo_header(saddr, daddr, protocol, uint16_t(segment.size()));
  acc = accumulate(segment, acc);
  const uint16_t stored = uint16_t(segment[check_offset] << 8 | segment[check_offset + 1]);
  acc += uint16_t(~stored);  // adding ~x cancels x in one's-complement arithmetic
  uint16_t r = uint16_t(~fold(acc));
  if (protocol == kProtoUdp && r == 0) r = 0xffff;
  return r;
}

uint16_t replace_addr(uint16_t check, const IpAddr& old_value, const IpAddr& new_value) {
  uint64_t acc = uint16_t(~check);
  acc += 0xffffu * uint64_t(old_value.v6() ? 8 : 2) - address_words(old_value);  // + ~old, word by word
  acc += address_words(new_value);
  return uint16_t(~fold(acc));
}

uint16_t replace16(uint16_t check, uint16_t old_value, uint16_t new_value) {
  uint64_t acc = uint16_t(~check);
  acc += uint16_t(~old_value);
  acc += new_value;
  return uint16_t(~fold(acc));
}

uint16_t replace32(uint16_t check, uint32_t old_value, uint32_t new_value) {
  check = replace16(check, uint16_t(old_value >> 16), uint16_t(new_value >> 16));
  return replace16(check, uint16_t(old_value), uint16_t(new_value));
}

bool complete_partial(std::span<uint8_t> frame, const ParsedPacket& p) {
  if (p.fragment) return false;  // a fragment's checksum covers the whole datagram
  size_t check_off;
  if (p.protocol == kProtoTcp) {
    check_off = offsetof(TcpHdr, check);
  } else if (p.protocol == kProtoUdp) {
    check_off = offsetof(UdpHdr, check);
  } else {
    return false;
  }
  const uint16_t l4_len = uint16_t(p.ip_len - (p.l4_off - p.l3_off));
  auto seg = frame.subspan(p.l4_off, l4_len);
  const uint16_t field = uint16_t(seg[check_off] << 8 | seg[check_off + 1]);
  if (p.protocol == kProtoUdp && field == 0) return false;  // "no checksum" stays 0
  const uint16_t partial = fold(pseudo_header(p.saddr, p.daddr, p.protocol, l4_len));
  if (field != partial) return false;  // the common case: a finished checksum
  // The field looks partial, but a finished checksum can equal it by chance (1 in 65536):
  // only a segment that fails verification is completed.
  const uint64_t verify =
      accumulate(seg, pseudo_header(p.saddr, p.daddr, p.protocol, l4_len));
  if (fold(verify) == 0xffff) return false;
  // Partial form: the field holds the pseudo-header sum, so summing the segment as it is
  // yields exactly the sum the hardware would have complemented and stored.
  uint16_t c = uint16_t(~fold(accumulate(seg)));
  if (p.protocol == kProtoUdp && c == 0) c = 0xffff;
  seg[check_off] = uint8_t(c >> 8);
  seg[check_off + 1] = uint8_t(c);
  return true;
}

bool packet_valid(std::span<const uint8_t> frame, const ParsedPacket& p) {
  // IPv6 has no header checksum.
  if (!p.v6 && fold(accumulate(frame.subspan(p.l3_off, p.l4_off - p.l3_off))) != 0xffff) return false;
  if (p.fragment || (p.protocol != kProtoTcp && p.protocol != kProtoUdp)) return true;
  const uint16_t l4_len = uint16_t(p.ip_len - (p.l4_off - p.l3_off));
  const auto seg = frame.subspan(p.l4_off, l4_len);
  const size_t check_off = p.protocol == kProtoTcp ? offsetof(TcpHdr, check) : offsetof(UdpHdr, check);
  const uint16_t field = uint16_t(seg[check_off] << 8 | seg[check_off + 1]);
  if (p.protocol == kProtoUdp && field == 0) return !p.v6;  // IPv6 requires one (RFC 8200 8.1)
  const uint64_t pseudo = pseudo_header(p.saddr, p.daddr, p.protocol, l4_len);
  return fold(accumulate(seg, pseudo)) == 0xffff || field == fold(pseudo);
}

}  // namespace lbd::csum
