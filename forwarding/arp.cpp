// ARP replies for VIPs; see arp.hpp.
#include "forwarding/arp.hpp"

namespace lbd {

bool is_arp_request_for(std::span<const uint8_t> frame, const ParsedPacket& p, Ipv4 target) {
  const auto* arp = header_at<ArpHdr>(frame, p.l3_off);
  return arp && arp->oper.host() == 1 && arp->tpa == target;
}

bool arp_sender_unicast(std::span<const uint8_t> frame) {
  const auto* eth = reinterpret_cast<const EthHdr*>(frame.data());
  const auto* arp = header_at<ArpHdr>(frame, sizeof(EthHdr));
  return arp && !(eth->src.b[0] & 1) && !(arp->sha.b[0] & 1);
}

void arp_request_to_reply(std::span<uint8_t> frame, const MacAddr& mac) {
  auto* eth = reinterpret_cast<EthHdr*>(frame.data());
  auto* arp = reinterpret_cast<ArpHdr*>(frame.data() + sizeof(EthHdr));
  const MacAddr asker = arp->sha;
  const Ipv4 asker_ip = arp->spa;
  const Ipv4 wanted = arp->tpa;
  eth->dst = asker;
  eth->src = mac;
  arp->oper = Be16::from_host(2);
  arp->tha = asker;
  arp->tpa = asker_ip;
  arp->sha = mac;
  arp->spa = wanted;
}

}  // namespace lbd
