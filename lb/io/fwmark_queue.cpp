// The firewall-mark queue and its iptables / ip6tables chains; see fwmark_queue.hpp.
#include "lb/io/fwmark_queue.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netfilter.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lb/base/log.hpp"
#include "lb/io/box_guard.hpp"

namespace lbd {

namespace {

// The two families' tools and tables: IPv4's firewall-mark services (-f N) in iptables,
// IPv6's (-f N -6) in ip6tables, the same chains in each.
struct Family {
  const char* tool;     // iptables, ip6tables
  const char* restore;  // their -restore
  const char* table;    // nft's name of their mangle table
  const char* icmp;     // the ICMP match and its error types
  std::array<const char*, 3> errors;
};
constexpr Family kFamilies[2] = {
    {"iptables", "iptables-restore", "ip mangle", "-p icmp --icmp-type",
     {"destination-unreachable", "source-quench", "time-exceeded"}},
    {"ip6tables", "ip6tables-restore", "ip6 mangle", "-p icmpv6 --icmpv6-type",
     {"destination-unreachable", "packet-too-big", "time-exceeded"}},
};

// An iptables or ip6tables command (the xtables NFQUEUE target: kernels without nft's queue
// expression have it), its output silenced; true if it succeeded. `-w`: waits for the
// xtables lock.
bool iptables(const Family& f, const std::vector<std::string>& args) {
  std::vector<const char*> argv{f.tool, "-w"};
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int e = posix_spawnp(&pid, f.tool, &fa, nullptr, const_cast<char* const*>(argv.data()), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// `script` to iptables-restore --noflush (one transaction): "" or why it failed.
std::string iptables_restore(const Family& f, const std::string& script) {
  FILE* p = popen(fmt::format("{} -w --noflush >/dev/null 2>&1", f.restore).c_str(), "w");
  if (!p) return fmt::format("{}: {}", f.restore, std::strerror(errno));
  fwrite(script.data(), 1, script.size(), p);
  const int status = pclose(p);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fmt::format("{} refused the rules (is the iptables package installed?)", f.restore);
  return {};
}

constexpr const char* kInChain = "LBD_FWMARK";        // mangle INPUT: the marked packets
constexpr const char* kNatChain = "LBD_FWMARK_NAT";   // mangle PREROUTING: NAT reals' replies

// Removes lbd's chains and the jumps to them (this run's, or a killed lbd's); true if there
// were any.
bool remove_chains(const Family& f) {
  bool any = false;
  while (iptables(f, {"-t", "mangle", "-D", "INPUT", "-j", kInChain})) any = true;
  while (iptables(f, {"-t", "mangle", "-D", "PREROUTING", "-j", kNatChain})) any = true;
  for (const char* c : {kInChain, kNatChain}) {
    iptables(f, {"-t", "mangle", "-F", c});
    any |= iptables(f, {"-t", "mangle", "-X", c});
  }
  return any;
}

// lbd's two chains and their jumps, each made unless it is there already (a previous lbd's
// are kept as they are: what they queue is lbd's again the moment the queue is bound).
bool ensure_chains(const Family& f) {
  for (const char* c : {kInChain, kNatChain})
    if (!iptables(f, {"-t", "mangle", "-S", c}) && !iptables(f, {"-t", "mangle", "-N", c})) return false;
  for (const auto& [hook, chain] : {std::pair{"INPUT", kInChain}, std::pair{"PREROUTING", kNatChain}})
    if (!iptables(f, {"-t", "mangle", "-C", hook, "-j", chain}) &&
        !iptables(f, {"-t", "mangle", "-I", hook, "1", "-j", chain}))
      return false;
  return true;
}

// iptables' mangle table: absent, present without a rule (its chains' policies only), or in use.
enum class Mangle { kAbsent, kEmpty, kInUse };
Mangle mangle_table(const Family& f) {
  if (!run_nft(fmt::format("list table {}\n", f.table))) return Mangle::kAbsent;
  FILE* p = popen(fmt::format("{} -w -t mangle -S 2>/dev/null", f.tool).c_str(), "r");
  if (!p) return Mangle::kInUse;
  char line[512];
  bool rules = false;
  while (fgets(line, sizeof line, p)) rules |= std::strncmp(line, "-P ", 3) != 0;
  pclose(p);
  return rules ? Mangle::kInUse : Mangle::kEmpty;
}

// The mangle table iptables made for lbd's chains goes with them, when nothing else uses it.
void drop_empty_mangle(const Family& f) {
  if (mangle_table(f) == Mangle::kEmpty) (void)run_nft(fmt::format("delete table {}\n", f.table));
}

}  // namespace

// IPVS takes packets at LOCAL_IN: the marked ones are queued from mangle INPUT (first
// there), after every PREROUTING rule that marks them. A NAT real's replies are forwarded,
// never local: they are queued from the start of mangle PREROUTING (no mark involved).
// iptables (xt_NFQUEUE), not nft's queue expression: this is what kernels without nft_queue
// (this project's CI) have. One family's rules (`v6`: ip6tables').
std::string FwmarkQueue::rules(bool v6, const std::vector<uint32_t>& marks, const std::vector<IpAddr>& nat_addrs,
                               const std::vector<IpAddr>& local) const {
  const Family& f = kFamilies[v6];
  const std::string queue =
      fmt::format("-j NFQUEUE --queue-num {}{}", opt_.queue, opt_.fail_open ? " --queue-bypass" : "");
  std::string s = fmt::format("*mangle\n-F {}\n-F {}\n", kInChain, kNatChain);
  for (uint32_t m : marks) s += fmt::format("-A {} -m mark --mark {} {}\n", kInChain, m, queue);
  // ICMP errors to the director (a fwmark service's addresses are its own): those about a
  // fwmark connection are lbd's to pass to its real (IPVS ip_vs_in_icmp); the rest lbd
  // hands back at once (ACCEPT).
  if (!marks.empty())
    for (const char* type : f.errors) s += fmt::format("-A {} {} {} {}\n", kInChain, f.icmp, type, queue);
  for (const IpAddr& a : nat_addrs) {
    if (a.v6() != v6) continue;
    for (const IpAddr& l : local)
      if (l.v6() == v6) s += fmt::format("-A {} -s {} -d {} -j RETURN\n", kNatChain, a, l);
    for (const char* proto : {"tcp", "udp", v6 ? "icmpv6" : "icmp"})
      s += fmt::format("-A {} -s {} -p {} {}\n", kNatChain, a, proto, queue);
  }
  return s + "COMMIT\n";
}

FwmarkQueue::FwmarkQueue(const Options& o) : opt_(o), buf_(65536 + 4096) {
  // The chains a previous lbd left (killed, or handed over to this one by --takeover) are
  // taken as they are: they queued (fail closed: dropped) what came while no lbd read, and
  // replacing them at the first apply() leaves no moment in which the director's own stack
  // gets a marked packet (and answers a local VIP with a RST). apply() removes them if this
  // lbd has no firewall-mark service of that family.
  for (const bool v6 : {false, true}) {
    const Family& f = kFamilies[v6];
    if (!iptables(f, {"-t", "mangle", "-S", kInChain}) && !iptables(f, {"-t", "mangle", "-S", kNatChain})) continue;
    hooked_[v6] = made_table_[v6] = true;  // made for lbd's chains: dropped with them if empty
    if (!ensure_chains(f)) {
      unhook(v6);
      LBD_LOG(kWarn, "fwmark", "removed the {} chains a previous lbd left (they could not be completed)", f.tool);
      continue;
    }
    LBD_LOG(kInfo, "fwmark", "took the {} chains a previous lbd left; this lbd's rules replace theirs", f.tool);
  }
  h_ = nfq_open();
  if (!h_) {
    const int e = errno;
    unhook();
    throw std::runtime_error(fmt::format("fwmark queue: nfq_open: {}", std::strerror(e)));
  }
  qh_ = nfq_create_queue(h_, opt_.queue, &FwmarkQueue::on_packet, this);
  if (!qh_) {
    const int e = errno;
    nfq_close(h_);
    unhook();  // nobody will read what they queue
    throw std::runtime_error(fmt::format("fwmark queue: cannot bind NFQUEUE {} (another program's, or no "
                                         "nfnetlink_queue in this kernel): {}", opt_.queue, std::strerror(e)));
  }
  nfq_set_mode(qh_, NFQNL_COPY_PACKET, 0xffff);
  nfq_set_queue_maxlen(qh_, 4096);
  if (opt_.fail_open) nfq_set_queue_flags(qh_, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
  fd_ = nfq_fd(h_);
  const int size = 4 << 20;  // room for bursts between two reads
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
}

FwmarkQueue::~FwmarkQueue() {
  if (qh_) nfq_destroy_queue(qh_);
  if (h_) nfq_close(h_);
  if (!keep_chains_) unhook();
}

void FwmarkQueue::unhook() {
  for (const bool v6 : {false, true}) unhook(v6);
}

void FwmarkQueue::unhook(bool v6) {
  if (!hooked_[v6]) return;
  remove_chains(kFamilies[v6]);
  if (made_table_[v6]) drop_empty_mangle(kFamilies[v6]);
  hooked_[v6] = made_table_[v6] = false;
}

Status FwmarkQueue::apply(const std::vector<uint32_t>& marks, const std::vector<uint32_t>& marks6,
                          const std::vector<IpAddr>& nat_addrs, const std::vector<IpAddr>& local) {
  Status result = Status::ok();
  for (const bool v6 : {false, true}) {
    const Family& f = kFamilies[v6];
    const std::vector<uint32_t>& m = v6 ? marks6 : marks;
    const bool nat = std::any_of(nat_addrs.begin(), nat_addrs.end(), [&](const IpAddr& a) { return a.v6() == v6; });
    // No firewall-mark service of this family: nothing of lbd's in its tables (the box as it was).
    if (m.empty() && !nat) {
      unhook(v6);
      continue;
    }
    if (!hooked_[v6]) {
      made_table_[v6] = mangle_table(f) == Mangle::kAbsent;
      hooked_[v6] = true;  // from here on unhook() takes away whatever of it was made
      if (!ensure_chains(f)) {
        unhook(v6);
        result = Status::error(EIO, fmt::format("fwmark queue: cannot make {}' mangle chains (is iptables installed?)",
                                                f.tool));
        continue;
      }
    }
    if (const std::string e = iptables_restore(f, rules(v6, m, nat_addrs, local)); !e.empty())
      result = Status::error(EIO, "fwmark queue: " + e);
  }
  return result;
}

int FwmarkQueue::on_packet(nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void* self_ptr) {
  auto* self = static_cast<FwmarkQueue*>(self_ptr);
  const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  const uint32_t id = ntohl(ph->packet_id);
  // Outside receive() (no handler) libnetfilter_queue is reading the answer to a request of
  // its own (nfq_set_mode at the start, the unbind in nfq_destroy_queue at exit) and hands
  // over what waited on the socket meanwhile: dropped like a taken packet, by the next
  // batch verdict or with the queue itself. (Calling the handler there crashed lbd at exit.)
  bool taken = true;
  if (self->handler_) {
    unsigned char* data = nullptr;
    const int len = nfq_get_payload(nfa, &data);
    Packet p{{}, nfq_get_nfmark(nfa), int(nfq_get_indev(nfa)), MacAddr{}};
    if (const nfqnl_msg_packet_hw* hw = nfq_get_packet_hw(nfa); hw && ntohs(hw->hw_addrlen) == 6)
      std::memcpy(p.hw_src.b.data(), hw->hw_addr, 6);
    p.ip = {data, size_t(std::max(len, 0))};
    taken = len > 0 && (*self->handler_)(p);
  }
  // Not lbd's: to the kernel at once. lbd's: dropped with the rest of the batch.
  self->queued_.fetch_add(1, std::memory_order_relaxed);
  if (!taken) {
    nfq_set_verdict(qh, id, NF_ACCEPT, 0, nullptr);
    self->accepted_.fetch_add(1, std::memory_order_relaxed);
  } else {
    self->any_taken_ = true;
  }
  self->last_id_ = id;
  return 0;
}

int FwmarkQueue::receive(int budget, const Handler& handler) {
  handler_ = &handler;
  int n = 0;
  for (; n < budget; ++n) {
    const ssize_t got = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      if (errno == ENOBUFS) {  // the kernel dropped some: counted, the socket still works
        enobufs_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      error_ = std::strerror(errno);
      n = -1;
      break;
    }
    nfq_handle_packet(h_, reinterpret_cast<char*>(buf_.data()), int(got));
  }
  // One verdict for every packet lbd took: each id up to the last not yet given one.
  if (any_taken_) nfq_set_verdict_batch(qh_, last_id_, NF_DROP);
  any_taken_ = false;
  handler_ = nullptr;
  return n;
}

}  // namespace lbd
