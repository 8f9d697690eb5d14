// Director box changes and their undo; see box_guard.hpp.
#include "lb/io/box_guard.hpp"

#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <linux/ethtool.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <nftables/libnftables.h>

#include "lb/base/host.hpp"
#include "lb/base/log.hpp"

namespace lbd {
namespace {

bool ethtool_io(int fd, const std::string& ifname, uint32_t cmd, uint32_t& value) {
  struct ethtool_value ev{};
  ev.cmd = cmd;
  ev.data = value;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) return false;
  value = ev.data;
  return true;
}

}  // namespace

Result<std::string> run_nft(const std::string& script) {
  const std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return Status::error(ENOMEM, "nft: cannot make a libnftables context");
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), script.c_str()) == 0) return std::string(nft_ctx_get_output_buffer(ctx.get()));
  std::string error = nft_ctx_get_error_buffer(ctx.get());
  while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  return Status::error(EIO, "nft: " + (error.empty() ? std::string("failed") : error));
}

// The offloads an lbd turned off are written in its table's comment ("lbd-offloads
// eth0=gro,lro eth1=gro"): the table outlives an lbd that was killed, and the next one
// reads what to restore from it instead of taking "off" for the original state.
static constexpr std::string_view kOffloadsTag = "lbd-offloads";

std::string BoxGuard::offloads_comment() const {
  std::string c(kOffloadsTag);
  for (const auto& o : saved_)
    if (o.had_gro || o.had_lro)
      c += fmt::format(" {}={}{}{}", o.ifname, o.had_gro ? "gro" : "", o.had_gro && o.had_lro ? "," : "",
                       o.had_lro ? "lro" : "");
  return c;
}

// interface → "gro", "lro" or "gro,lro", from the comment of a table a killed lbd left.
static std::map<std::string, std::string> inherited_offloads() {
  std::map<std::string, std::string> left;
  const auto found = run_nft(fmt::format("list table netdev {}\n", BoxGuard::kTable));
  if (!found) return left;
  const std::string& listing = *found;
  const auto at = listing.find(fmt::format("comment \"{}", kOffloadsTag));
  if (at == std::string::npos) return left;
  const auto end = listing.find('"', listing.find('"', at) + 1);
  std::istringstream words(listing.substr(at, end - at));
  std::string word;
  while (words >> word)
    if (const auto eq = word.find('='); eq != std::string::npos) left[word.substr(0, eq)] = word.substr(eq + 1);
  return left;
}

// GRO and LRO off on the interface (whether they were on is added to `o`); `left_*`: a
// killed lbd's table says it had turned them off.
static void quiet_offloads(int fd, BoxGuard::Offloads& o, bool left_gro, bool left_lro) {
  const std::string& ifname = o.ifname;
  uint32_t v = 0;
  if (ethtool_io(fd, ifname, ETHTOOL_GGRO, v)) {
    o.had_gro |= v != 0 || left_gro;
    uint32_t off = 0;
    if (v != 0 && !ethtool_io(fd, ifname, ETHTOOL_SGRO, off))
      LBD_LOG(kWarn, "guard", "cannot turn GRO off on {}: {}", ifname, std::strerror(errno));
  }
  uint32_t flags = 0;
  if (ethtool_io(fd, ifname, ETHTOOL_GFLAGS, flags)) {
    o.had_lro |= (flags & ETH_FLAG_LRO) || left_lro;
    uint32_t nf = flags & ~uint32_t(ETH_FLAG_LRO);
    if ((flags & ETH_FLAG_LRO) && !ethtool_io(fd, ifname, ETHTOOL_SFLAGS, nf))
      LBD_LOG(kWarn, "guard", "cannot turn LRO off on {}: {}", ifname, std::strerror(errno));
  }
  if (v != 0 || (flags & ETH_FLAG_LRO))
    LBD_LOG(kInfo, "guard", "{}: turned off{}{} for capture (restored at exit)", ifname, v != 0 ? " GRO" : "",
            flags & ETH_FLAG_LRO ? " LRO" : "");
}

BoxGuard::BoxGuard(std::vector<std::string> interfaces) : interfaces_(std::move(interfaces)) {
  const auto inherited = inherited_offloads();
  const UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  for (const auto& ifname : interfaces_) {
    Offloads o{ifname};
    // Left off by a previous lbd that did not exit cleanly: originally on.
    const auto it = inherited.find(ifname);
    const std::string left = it == inherited.end() ? std::string() : it->second;
    const bool left_gro = left.find("gro") != std::string::npos;
    const bool left_lro = left.find("lro") != std::string::npos;
    if (left_gro || left_lro)
      LBD_LOG(kWarn, "guard", "{}: a previous lbd left{}{} off; restored at exit", ifname,
              left_gro ? " GRO" : "", left_lro ? " LRO" : "");
    quiet_offloads(fd.get(), o, left_gro, left_lro);
    saved_.push_back(o);
  }
  // A table left by an lbd that was killed is replaced, not stacked. The guard is a netdev
  // ingress chain on the capture interfaces: it runs after AF_PACKET taps (lbd still sees
  // every frame) but before the IP stack, so dropped traffic costs the kernel nothing more.
  if (const auto made = run_nft(fmt::format("table netdev {0}\ndelete table netdev {0}\n{1}", kTable, table_script()));
      !made)
    throw std::runtime_error("nftables guard: " + made.message());
  // From now on, someone else's change that removes the guard is heard of at once.
  events_fd_.reset(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = 1u << (NFNLGRP_NFTABLES - 1);
  const int rcvbuf = 4 << 20;
  if (events_fd_) setsockopt(events_fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (!events_fd_ || bind(events_fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    LBD_LOG(kWarn, "guard", "cannot listen to nftables events ({}): a flush of the ruleset would remove the "
            "guard unnoticed", std::strerror(errno));
    events_fd_.reset();
  }
}

void BoxGuard::drain_events() {
  char buf[8192];
  while (events_fd_ && recv(events_fd_.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

Result<bool> BoxGuard::on_events(const TrafficModel& model) {
  // Does one of the events remove (a part of) table netdev lbd? Events lost to a full
  // buffer (ENOBUFS) might have: then the table is looked for.
  bool hit = false, lost = false;
  alignas(nlmsghdr) char buf[65536];
  for (;;) {
    const ssize_t n = recv(events_fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ENOBUFS) {
        lost = true;
        continue;
      }
      break;  // EAGAIN: all read
    }
    if (n == 0) break;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= size_t(n);) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || off + h->nlmsg_len > size_t(n)) break;
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (NFNL_SUBSYS_ID(h->nlmsg_type) != NFNL_SUBSYS_NFTABLES) continue;
      const int msg = NFNL_MSG_TYPE(h->nlmsg_type);
      if (msg != NFT_MSG_DELTABLE && msg != NFT_MSG_DELCHAIN && msg != NFT_MSG_DELRULE && msg != NFT_MSG_DELSET)
        continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) continue;
      const auto* g = static_cast<const nfgenmsg*>(NLMSG_DATA(h));
      if (g->nfgen_family != NFPROTO_NETDEV) continue;
      // The table's name is attribute 1 of each of these (NFTA_{TABLE_NAME,CHAIN_TABLE,
      // RULE_TABLE,SET_TABLE}).
      const char* p = static_cast<const char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg));
      const char* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
      while (p + sizeof(nlattr) <= end) {
        const auto* a = reinterpret_cast<const nlattr*>(p);
        if (a->nla_len < sizeof(nlattr) || p + a->nla_len > end) break;
        if ((a->nla_type & NLA_TYPE_MASK) == 1) {
          const std::string_view name(p + NLA_HDRLEN, strnlen(p + NLA_HDRLEN, a->nla_len - NLA_HDRLEN));
          hit |= name == kTable;
          break;
        }
        p += NLA_ALIGN(a->nla_len);
      }
    }
  }
  if (!hit && lost) hit = !run_nft(fmt::format("list table netdev {}\n", kTable));
  if (!hit) return false;
  if (Status st = rebuild(model); !st.is_ok()) return st;
  return true;
}

Status BoxGuard::rebuild(const TrafficModel& model) {
  // Whatever is left of it goes, and the whole table comes back with its sets.
  Status st = run_nft(fmt::format("table netdev {0}\ndelete table netdev {0}\n{1}", kTable, table_script())).status();
  have_ = {};
  if (st.is_ok()) st = apply(model);
  drain_events();  // our own deletion and creation, just reported
  return st;
}

Status BoxGuard::interface_back(const std::string& ifname, const TrafficModel& model) {
  const UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  for (auto& o : saved_)
    if (o.ifname == ifname) quiet_offloads(fd.get(), o, false, false);  // a new device: GRO on again
  return rebuild(model);
}

std::string BoxGuard::table_script() const {
  // The interfaces there now (nft refuses a device that does not exist; one that comes
  // back is added by interface_back()). None: the chain is kept, hooked nowhere.
  std::string devs;
  for (const auto& i : interfaces_)
    if (if_nametoindex(i.c_str())) devs += fmt::format("{}\"{}\"", devs.empty() ? "" : ", ", i);
  const std::string hook =
      devs.empty() ? "" : fmt::format("    type filter hook ingress devices = {{ {} }} priority -500; policy accept;\n", devs);
  return fmt::format(
      "table netdev {0} {{\n  comment \"{3}\"\n"
      "  set svc {{ type ipv4_addr . inet_proto . inet_service; }}\n"
      "  set svc_any {{ type ipv4_addr . inet_proto; }}\n"
      "  set vips {{ type ipv4_addr; }}\n"
      "  set nat {{ type ipv4_addr . inet_proto . inet_service; }}\n"
      "  set nat_addrs {{ type ipv4_addr; }}\n"
      "  set local {{ type ipv4_addr; }}\n"
      "  set svc6 {{ type ipv6_addr . inet_proto . inet_service; }}\n"
      "  set svc_any6 {{ type ipv6_addr . inet_proto; }}\n"
      "  set vips6 {{ type ipv6_addr; }}\n"
      "  set nat6 {{ type ipv6_addr . inet_proto . inet_service; }}\n"
      "  set nat_addrs6 {{ type ipv6_addr; }}\n"
      "  set local6 {{ type ipv6_addr; }}\n"
      "  chain guard {{\n{1}{2}"
      "  }}\n}}\n",
      kTable, hook, kGuardRules, offloads_comment());
}

BoxGuard::~BoxGuard() {
  events_fd_.reset();
  if (const auto gone = run_nft(fmt::format("delete table netdev {}\n", kTable)); !gone)
    LBD_LOG(kError, "guard", "cannot remove nftables table netdev {}: {}", kTable, gone.message());
  const UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  for (const auto& o : saved_) {
    if (o.had_gro) {
      uint32_t on = 1;
      ethtool_io(fd.get(), o.ifname, ETHTOOL_SGRO, on);
    }
    if (o.had_lro) {
      uint32_t flags = 0;
      if (ethtool_io(fd.get(), o.ifname, ETHTOOL_GFLAGS, flags)) {
        flags |= ETH_FLAG_LRO;
        ethtool_io(fd.get(), o.ifname, ETHTOOL_SFLAGS, flags);
      }
    }
  }
}

namespace {


// "add element netdev lbd NAME { a, b }\n" for what `want` has and `have` lacks (or
// "delete element" for the reverse), in batches nft takes in one line.
void element_changes(std::string& script, const char* verb, const char* set, const std::set<std::string>& from,
                     const std::set<std::string>& minus) {
  std::string batch;
  size_t n = 0;
  auto flush = [&] {
    if (n) script += fmt::format("{} element netdev {} {} {{ {} }}\n", verb, BoxGuard::kTable, set, batch);
    batch.clear();
    n = 0;
  };
  for (const auto& x : from) {
    if (minus.count(x)) continue;
    batch += (n ? ", " : "") + x;
    if (++n == 4096) flush();
  }
  flush();
}

}  // namespace

Status BoxGuard::apply(const TrafficModel& model) {
  GuardElements want = guard_elements(model);
  std::string script;
  const std::pair<const char*, std::set<std::string> GuardElements::*> sets[] = {
      {"svc", &GuardElements::svc},   {"svc_any", &GuardElements::svc_any},     {"vips", &GuardElements::vips},
      {"nat", &GuardElements::nat},   {"nat_addrs", &GuardElements::nat_addrs}, {"local", &GuardElements::local},
      {"svc6", &GuardElements::svc6}, {"svc_any6", &GuardElements::svc_any6},   {"vips6", &GuardElements::vips6},
      {"nat6", &GuardElements::nat6}, {"nat_addrs6", &GuardElements::nat_addrs6}, {"local6", &GuardElements::local6}};
  for (const auto& [name, member] : sets) element_changes(script, "delete", name, have_.*member, want.*member);
  for (const auto& [name, member] : sets) element_changes(script, "add", name, want.*member, have_.*member);
  if (script.empty()) return Status::ok();
  if (const auto done = run_nft(script); !done) return done.status();  // one transaction: all of it or none
  have_ = std::move(want);
  return Status::ok();
}

}  // namespace lbd
