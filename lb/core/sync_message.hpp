// IPVS's connection synchronisation messages (net/netfilter/ipvs/ip_vs_sync.c, version 1),
// byte for byte: what a master director multicasts about its connections and a backup
// applies, so lbd and a kernel IPVS director understand each other. Pure: bytes in,
// records out (and back); no socket, no clock.
//
// A message is an 8-byte header (0, syncid, size, count, version 1, 0) and `count`
// entries, each 4-byte aligned: type (bit 0: IPv6), protocol, version/size, flags, state,
// the three ports, fwmark, timeout in seconds, then the client, virtual and destination
// addresses (4 or 16 bytes each), then options (type, length, data): 1 = TCP sequence
// data (NAT's sequence adjustment), 2/3 = a persistence engine's data and name.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "forwarding/packet.hpp"

namespace lbd::sync {

inline constexpr uint16_t kDefaultPort = 8848;                      // IP_VS_SYNC_PORT
inline constexpr Ipv4 kDefaultGroup{{224, 0, 0, 81}};               // IP_VS_SYNC_GROUP
inline constexpr size_t kHeaderSize = 8;                            // struct ip_vs_sync_mesg
inline constexpr size_t kEntryV4Size = 36;                          // struct ip_vs_sync_v4
inline constexpr size_t kEntryV6Size = 72;                          // struct ip_vs_sync_v6
inline constexpr size_t kSeqOptionSize = 2 + 24;                    // type, length, in/out ip_vs_seq
inline constexpr size_t kMaxMessage = 65507;                        // 65535 - IPv4 - UDP headers

// A sync daemon as ipvsadm --start-daemon starts it, with ipvsadm's and the kernel's defaults.
struct DaemonSpec {
  std::string mcast_ifn = "eth0";  // ipvsadm's DEF_MCAST_IFN
  uint8_t syncid = 0;              // 0: a backup takes every sync id
  uint32_t maxlen = 0;             // 0: the interface's MTU less IPv4 and UDP headers, at most 1472
  Ipv4 group = kDefaultGroup;
  uint16_t port = kDefaultPort;
  uint8_t ttl = 1;
  friend bool operator==(const DaemonSpec&, const DaemonSpec&) = default;
};

// IP_VS_CONN_F_* (include/uapi/linux/ip_vs.h).
namespace flag {
inline constexpr uint32_t kFwdMask = 0x0007, kMasq = 0x0000, kLocalNode = 0x0001, kTunnel = 0x0002,
                          kDroute = 0x0003, kSync = 0x0020, kHashed = 0x0040, kNoOutput = 0x0080,
                          kInactive = 0x0100, kOutSeq = 0x0200, kInSeq = 0x0400, kSeqMask = 0x0600,
                          kNoCport = 0x0800, kTemplate = 0x1000, kOnePacket = 0x2000;
// What a backup takes from a message (IP_VS_CONN_F_BACKUP_MASK).
inline constexpr uint32_t kBackupMask = kFwdMask | kNoOutput | kInactive | kSeqMask | kNoCport | kTemplate;
}  // namespace flag

// IPVS's TCP state numbers are lbd's ConnState's (tcp_state.hpp); UDP's one state is 0.
inline constexpr uint16_t kTcpStates = 11;  // IP_VS_TCP_S_LAST

struct Seq {  // struct ip_vs_seq, host order
  uint32_t init_seq = 0, delta = 0, previous_delta = 0;
  friend bool operator==(const Seq&, const Seq&) = default;
};

// One connection (or persistence template) as a message carries it. Ports host order.
struct Record {
  bool ipv6 = false;       // an IPv6 entry (16-byte addresses; the three are of one family)
  uint8_t protocol = 0;
  uint32_t flags = 0;
  uint16_t state = 0;
  uint16_t cport = 0, vport = 0, dport = 0;
  uint32_t fwmark = 0;
  uint32_t timeout = 0;    // seconds
  IpAddr caddr, vaddr, daddr;
  bool has_seq = false;
  Seq in_seq, out_seq;
  friend bool operator==(const Record&, const Record&) = default;
};

// Entries appended to a message of at most `maxlen` bytes (the kernel's sync_maxlen).
class MessageBuilder {
 public:
  MessageBuilder(uint8_t syncid, size_t maxlen);
  // False (nothing written) when the entry does not fit or the message holds 255: send
  // this one, clear() and add again.
  bool add(const Record& r);
  std::span<const uint8_t> bytes() const { return {buf_.data(), size_}; }
  uint8_t count() const { return buf_[4]; }
  bool empty() const { return count() == 0; }
  void clear();
  static size_t entry_size(const Record& r) {
    return (r.ipv6 ? kEntryV6Size : kEntryV4Size) + (r.has_seq ? kSeqOptionSize : 0);
  }

 private:
  std::vector<uint8_t> buf_;
  size_t size_ = kHeaderSize;
};

// Why a message was not taken whole (each a counter of the backup's).
enum class Refusal : uint8_t {
  kNone,
  kTooShort,      // shorter than a header
  kBadSize,       // its size field is not the datagram's length
  kOtherSyncId,   // a sync id other than the backup's own (when that is not 0)
  kVersion,       // not a version 1 message (version 0 is the kernel's sync_version=0)
  kMalformed,     // an entry or option runs past the end, a bad type, length or option
  kCount
};
const char* refusal_name(Refusal r);

// Why one entry of a well-formed message was skipped (the others are applied).
// kMappedAddress: an IPv6 entry with an IPv4-mapped address (no IPVS sends one; lbd's
// addresses would take it for IPv4).
enum class Skip : uint8_t { kNone, kProtocol, kState, kMandatoryOption, kMappedAddress, kCount };
const char* skip_name(Skip s);

struct Decoded {
  Refusal refusal = Refusal::kNone;
  std::vector<Record> records;  // the entries to apply, in message order
  std::array<uint32_t, size_t(Skip::kCount)> skipped{};
};

// Decodes a whole datagram; `own_syncid` 0 takes every sync id (ipvsadm's default). A
// message refused is applied in no part: `records` is empty then.
Decoded decode(std::span<const uint8_t> msg, uint8_t own_syncid);

}  // namespace lbd::sync
