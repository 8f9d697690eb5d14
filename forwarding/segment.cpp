// TCP segmentation; see segment.hpp.
#include "forwarding/segment.hpp"

#include <cstring>

#include "forwarding/checksum.hpp"

namespace lbd {

size_t tcp_segment_one(std::span<const uint8_t> frame, const ParsedPacket& p, uint16_t mtu,
                       size_t index, uint8_t* dst) {
  if (p.protocol != kProtoTcp) return 0;
  const auto* tcp = header_at<TcpHdr>(frame, p.l4_off);
  const size_t ip_hlen = p.l4_off - p.l3_off;
  const size_t tcp_hlen = (tcp->doff_res >> 4) * 4u;
  const size_t hdrs = p.l4_off + tcp_hlen;  // Ethernet + IP + TCP
  const size_t payload = p.l3_off + p.ip_len - hdrs;
  if (ip_hlen + tcp_hlen >= mtu) return 0;
  const size_t mss = mtu - ip_hlen - tcp_hlen;
  const size_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (index >= nseg) return 0;
  const size_t off = index * mss;
  const size_t chunk = std::min(mss, payload - std::min(payload, off));

  std::memcpy(dst, frame.data(), hdrs);
  std::memcpy(dst + hdrs, frame.data() + hdrs + off, chunk);
  auto* t = reinterpret_cast<TcpHdr*>(dst + p.l4_off);
  const uint16_t ip_len = uint16_t(ip_hlen + tcp_hlen + chunk);
  if (p.v6) {  // no identification, no header checksum; the payload length counts extension headers
    reinterpret_cast<Ipv6Hdr*>(dst + p.l3_off)->payload_len = Be16::from_host(uint16_t(ip_len - sizeof(Ipv6Hdr)));
  } else {
    auto* ip = reinterpret_cast<Ipv4Hdr*>(dst + p.l3_off);
    ip->tot_len = Be16::from_host(ip_len);
    ip->id = Be16::from_host(uint16_t(ip->id.host() + index));
    ip->check = Be16{};
    ip->check = Be16::from_host(csum::ipv4_header({dst + p.l3_off, ip_hlen}));
  }
  t->seq = Be32::from_host(uint32_t(t->seq.host() + off));
  if (index + 1 < nseg) t->flags &= uint8_t(~(tcp_flag::kFin | tcp_flag::kPsh));
  if (index > 0) t->flags &= uint8_t(~0x80);  // CWR only on the first segment
  const std::span<const uint8_t> seg(dst + p.l4_off, tcp_hlen + chunk);
  t->check = Be16::from_host(
      csum::l4_full(p.saddr, p.daddr, kProtoTcp, seg, offsetof(TcpHdr, check)));
  return hdrs + chunk;
}

}  // namespace lbd
