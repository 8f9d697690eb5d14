// IPVS sync messages, version 1; see sync_message.hpp. The checks are the kernel's
// (ip_vs_process_message, ip_vs_proc_sync_conn), with one difference: a message is checked
// whole before any entry is applied, so a malformed one changes nothing (the kernel
// applies the entries before the bad one).
#include "lb/core/sync_message.hpp"

#include <algorithm>
#include <cstring>

namespace lbd::sync {
namespace {

// struct ip_vs_sync_mesg
struct WireHeader {
  uint8_t reserved;  // 0: a version 0 receiver reads it as "no connections"
  uint8_t syncid;
  Be16 size;
  uint8_t nr_conns;
  int8_t version;
  Be16 spare;
};
static_assert(sizeof(WireHeader) == kHeaderSize);

// struct ip_vs_sync_v4 (the IPv6 one has 16-byte addresses in the same places)
struct WireEntryV4 {
  uint8_t type;
  uint8_t protocol;
  Be16 ver_size;  // version in the top 4 bits (0), the entry's length in the low 12
  Be32 flags;
  Be16 state;
  Be16 cport, vport, dport;
  Be32 fwmark;
  Be32 timeout;
  Be32 caddr, vaddr, daddr;
};
static_assert(sizeof(WireEntryV4) == kEntryV4Size);

struct WireSeq {
  Be32 init_seq, delta, previous_delta;
};
static_assert(sizeof(WireSeq) == 12);

constexpr uint8_t kTypeInet6 = 1;      // STYPE_F_INET6
constexpr uint16_t kSizeMask = 0x0fff;  // SVER_MASK
constexpr uint8_t kOptSeqData = 1, kOptPeData = 2, kOptPeName = 3, kOptParam = 0x40;
constexpr size_t kPeDataMax = 255, kPeNameMax = 16;  // IP_VS_PEDATA_MAXLEN, IP_VS_PENAME_MAXLEN
constexpr uint8_t kMaxEntries = 255;

WireSeq to_wire(const Seq& s) {
  return {Be32::from_host(s.init_seq), Be32::from_host(s.delta), Be32::from_host(s.previous_delta)};
}
Seq from_wire(const WireSeq& w) { return {w.init_seq.host(), w.delta.host(), w.previous_delta.host()}; }

}  // namespace

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kNone: return "none";
    case Refusal::kTooShort: return "too_short";
    case Refusal::kBadSize: return "bad_size";
    case Refusal::kOtherSyncId: return "other_syncid";
    case Refusal::kVersion: return "version";
    case Refusal::kMalformed: return "malformed";
    case Refusal::kCount: break;
  }
  return "?";
}

const char* skip_name(Skip s) {
  switch (s) {
    case Skip::kNone: return "none";
    case Skip::kProtocol: return "protocol";
    case Skip::kState: return "state";
    case Skip::kMandatoryOption: return "option";
    case Skip::kMappedAddress: return "mapped_address";
    case Skip::kCount: break;
  }
  return "?";
}

MessageBuilder::MessageBuilder(uint8_t syncid, size_t maxlen)
    : buf_(std::clamp<size_t>(maxlen, kHeaderSize + kEntryV4Size, kMaxMessage)) {
  buf_[1] = syncid;
  clear();
}

void MessageBuilder::clear() {
  size_ = kHeaderSize;
  WireHeader h{0, buf_[1], Be16::from_host(kHeaderSize), 0, 1, {}};
  std::memcpy(buf_.data(), &h, sizeof h);
}

bool MessageBuilder::add(const Record& r) {
  const size_t pad = (4 - size_ % 4) % 4;  // the previous entry padded to 32 bits
  const size_t len = entry_size(r);
  if (count() == kMaxEntries || size_ + pad + len > buf_.size()) return false;
  uint8_t* p = buf_.data() + size_;
  std::memset(p, 0, pad + len);
  p += pad;
  WireEntryV4 e{};
  e.type = r.ipv6 ? kTypeInet6 : 0;
  e.protocol = r.protocol;
  e.ver_size = Be16::from_host(uint16_t(len & kSizeMask));
  e.flags = Be32::from_host(r.flags & ~flag::kHashed);
  e.state = Be16::from_host(r.state);
  e.cport = Be16::from_host(r.cport);
  e.vport = Be16::from_host(r.vport);
  e.dport = Be16::from_host(r.dport);
  e.fwmark = Be32::from_host(r.fwmark);
  e.timeout = Be32::from_host(r.timeout);
  const size_t fixed = r.ipv6 ? kEntryV6Size : kEntryV4Size;
  std::memcpy(p, &e, offsetof(WireEntryV4, caddr));
  // struct ip_vs_sync_v6: the same fields, then three 16-byte addresses.
  const size_t width = r.ipv6 ? 16 : 4;
  uint8_t* a = p + offsetof(WireEntryV4, caddr);
  for (const IpAddr* addr : {&r.caddr, &r.vaddr, &r.daddr}) {
    std::memcpy(a, addr->b.data() + (16 - width), width);
    a += width;
  }
  if (r.has_seq) {
    uint8_t* o = p + fixed;
    o[0] = kOptSeqData;
    o[1] = 2 * sizeof(WireSeq);
    const WireSeq in = to_wire(r.in_seq), out = to_wire(r.out_seq);
    std::memcpy(o + 2, &in, sizeof in);
    std::memcpy(o + 2 + sizeof in, &out, sizeof out);
  }
  size_ += pad + len;
  buf_[4] = uint8_t(count() + 1);
  const Be16 size = Be16::from_host(uint16_t(size_));
  std::memcpy(buf_.data() + 2, &size, 2);
  return true;
}

Decoded decode(std::span<const uint8_t> msg, uint8_t own_syncid) {
  Decoded d;
  auto refuse = [&d](Refusal r) {
    d.refusal = r;
    d.records.clear();
    return d;
  };
  if (msg.size() < 4) return refuse(Refusal::kTooShort);  // struct ip_vs_sync_mesg_v0
  WireHeader h{};
  std::memcpy(&h, msg.data(), std::min(msg.size(), sizeof h));
  if (msg.size() != h.size.host()) return refuse(Refusal::kBadSize);
  if (own_syncid != 0 && h.syncid != own_syncid) return refuse(Refusal::kOtherSyncId);
  if (msg.size() < sizeof h || h.version != 1 || h.reserved != 0 || h.spare.host() != 0)
    return refuse(Refusal::kVersion);

  const uint8_t* const end = msg.data() + msg.size();
  const uint8_t* next = msg.data() + sizeof h;
  for (unsigned i = 0; i < h.nr_conns; ++i) {
    const uint8_t* const start = next;
    const uint8_t* p = start;
    if (end - p < ptrdiff_t(kEntryV4Size)) return refuse(Refusal::kMalformed);
    WireEntryV4 e;
    std::memcpy(&e, p, sizeof e);
    const uint16_t size = e.ver_size.host() & kSizeMask;
    if (e.ver_size.host() >> 12) return refuse(Refusal::kMalformed);  // an entry version lbd does not know
    const uint8_t* const entry_end = p + size;
    if (entry_end > end) return refuse(Refusal::kMalformed);
    Record r;
    if (e.type & kTypeInet6) {
      r.ipv6 = true;
      p += kEntryV6Size;
    } else if (e.type == 0) {
      p += kEntryV4Size;
    } else {
      return refuse(Refusal::kMalformed);
    }
    if (p > entry_end) return refuse(Refusal::kMalformed);
    bool seq = false, pe_data = false, pe_name = false, mandatory_unknown = false;
    while (p < entry_end) {
      if (entry_end - p < 2) return refuse(Refusal::kMalformed);
      const uint8_t type = p[0], len = p[1];
      p += 2;
      if (!len || entry_end - p < len) return refuse(Refusal::kMalformed);
      switch (type & ~kOptParam) {
        case kOptSeqData: {
          if (len != 2 * sizeof(WireSeq) || seq) return refuse(Refusal::kMalformed);
          WireSeq in, out;
          std::memcpy(&in, p, sizeof in);
          std::memcpy(&out, p + sizeof in, sizeof out);
          r.in_seq = from_wire(in);
          r.out_seq = from_wire(out);
          r.has_seq = seq = true;
          break;
        }
        case kOptPeData:
          if (len > kPeDataMax || pe_data) return refuse(Refusal::kMalformed);
          pe_data = true;
          break;
        case kOptPeName:
          if (len > kPeNameMax || pe_name) return refuse(Refusal::kMalformed);
          pe_name = true;
          break;
        default:
          if (!(type & kOptParam)) mandatory_unknown = true;
      }
      p += len;
    }
    // The next entry starts 32-bit aligned (the last one's padding is not sent).
    next = start + std::min<size_t>((size + 3u) / 4 * 4, size_t(end - start));

    r.protocol = e.protocol;
    r.flags = (e.flags.host() & flag::kBackupMask) | flag::kSync;
    r.state = e.state.host();
    r.cport = e.cport.host();
    r.vport = e.vport.host();
    r.dport = e.dport.host();
    r.fwmark = e.fwmark.host();
    r.timeout = e.timeout.host();
    bool mapped = false;
    if (r.ipv6) {
      const uint8_t* a = start + offsetof(WireEntryV4, caddr);
      for (IpAddr* addr : {&r.caddr, &r.vaddr, &r.daddr}) {
        Ipv6 v;
        std::memcpy(v.b.data(), a, 16);
        *addr = IpAddr(v);
        mapped |= !addr->v6();
        a += 16;
      }
    } else {
      r.caddr = e.caddr;
      r.vaddr = e.vaddr;
      r.daddr = e.daddr;
    }
    // Entries the kernel skips and goes on (ip_vs_proc_sync_conn's positive codes).
    Skip skip = Skip::kNone;
    const bool templ = r.flags & flag::kTemplate;
    if (mandatory_unknown || pe_data || pe_name) skip = Skip::kMandatoryOption;  // lbd has no persistence engine
    else if (!templ && r.protocol != kProtoTcp && r.protocol != kProtoUdp) skip = Skip::kProtocol;
    else if (!templ && r.state >= (r.protocol == kProtoTcp ? kTcpStates : 1)) skip = Skip::kState;
    else if (mapped) skip = Skip::kMappedAddress;
    if (skip != Skip::kNone) {
      ++d.skipped[size_t(skip)];
      continue;
    }
    d.records.push_back(r);
  }
  return d;
}

}  // namespace lbd::sync
