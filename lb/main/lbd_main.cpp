// lbd: the director daemon. Options are parsed here (Boost.Program_options stays in this
// file) into a DaemonConfig; everything else lives in daemon.cpp.
#include <boost/program_options.hpp>

#include <charconv>
#include <iostream>

#include "lb/core/sysctl.hpp"
#include "lb/daemon/daemon.hpp"
#include "lb/io/http_server.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  lbd::DaemonConfig cfg;
  std::string max_conns = std::to_string(cfg.max_connections);
  std::string check_path;
  po::options_description desc(
      "Usage: lbd --interface IFACE [--interface IFACE ...] [options]\n\n"
      "Userspace Layer-4 load balancer (LVS/IPVS model). Configure it with lbadm.\nOptions");
  desc.add_options()
      ("help,h", "show this help and exit")
      ("version", "show the version and exit")
      ("interface,i", po::value<std::vector<std::string>>(&cfg.interfaces)->composing(),
       "capture and forward on IFACE (repeatable)")
      ("socket", po::value<std::string>(&cfg.socket_path)->default_value(cfg.socket_path),
       "control socket (root only, mode 0600)")
      ("rules", po::value<std::string>(&cfg.rules_path)->default_value(cfg.rules_path),
       "rules file restored at start (ipvsadm -S format)")
      ("max-connections", po::value<std::string>(&max_conns)->default_value(max_conns),
       "connection table capacity (100 bytes each), 1 to 134217728")
      ("check-rules", po::value<std::string>(&check_path)->implicit_value(""),
       "check a rules file (default: the --rules file) as a start would apply it, print the "
       "verdict and exit (0: it would load; 1: it would not)")
      ("offload", po::value<std::string>(&cfg.offload)->default_value(cfg.offload),
       "xdp: the kernel forwards established connections from lbd's XDP flow cache (native "
       "where the interfaces can transmit XDP frames, else generic); xdp-native, xdp-generic: "
       "that mode only; off: lbd forwards every packet")
      ("offload-flows", po::value<uint32_t>(&cfg.offload_flows),
       "flow cache entries (a NAT connection takes 2; default 2 per connection, at most 1048576)")
      ("workers", po::value<uint32_t>(&cfg.workers)->default_value(0),
       "worker threads, each owning the connections of a share of the clients (1 to 64; 0: one "
       "per receive queue of the interfaces, at most the CPUs lbd may use)")
      ("sysctl", po::value<std::vector<std::string>>(&cfg.sysctls)->composing(),
       "NAME=VALUE: one of IPVS's sysctls lbd takes (sloppy_tcp, expire_nodest_conn, "
       "expire_quiescent_template, conn_reuse_mode, nat_icmp_send, ...; repeatable), set "
       "before the rules file's --lbd-sysctl lines, at start and at each reload")
      ("takeover", po::bool_switch(&cfg.takeover),
       "take the connections over from the lbd running on --socket (it hands its table over "
       "and stops, then this one starts): a restart that keeps every connection, without "
       "systemd (under systemd, a restart does it by itself)")
      ("vip-arp", po::value<std::string>(&cfg.vip_arp)->default_value(cfg.vip_arp),
       "when lbd answers ARP for a VIP not configured on the box: active (unless lbd is a "
       "passive sync backup), always, or never (keepalived or the operator configures the VIP "
       "and the kernel answers)")
      ("announce-table", po::value<uint32_t>(&cfg.announce_table)->default_value(0),
       "N: a route VIP/32 (IPv6: VIP/128) dev lbd-announce in routing table N for each VIP that has an "
       "available real, while lbd runs (for BIRD's kernel protocol to announce by BGP: "
       "several directors behind ECMP); 0: none")
      ("metrics", po::value<std::string>(&cfg.metrics),
       "ADDR:PORT: serve Prometheus metrics (/metrics, node_exporter's ipvs names), the live "
       "status page (/) and its data (/status.json) over HTTP there (off unless set; the unit's "
       "default binds 127.0.0.1:9587)")
      ("fwmark-queue", po::value<uint32_t>(&cfg.fwmark_queue)->default_value(cfg.fwmark_queue),
       "N: the NFQUEUE number firewall-mark services' (-f) packets reach lbd through, after the "
       "firewall's marking rules (0 to 65535)")
      ("fwmark-fail", po::value<std::string>(&cfg.fwmark_fail)->default_value(cfg.fwmark_fail),
       "what the kernel does with those packets while lbd cannot take them (stopped, queue "
       "full): closed drops them, open passes them to the director's own stack")
      ("capture-timeout-ms", po::value<int>(&cfg.capture_timeout_ms)->default_value(0),
       "0: immediate capture (lowest latency); N: buffered blocks, up to N ms latency");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "lbd: " << e.what() << "\nTry 'lbd --help' for more information.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "lbd " LBD_VERSION "\n";
    return 0;
  }
  if (vm.count("check-rules"))
    return lbd::check_rules_file(check_path.empty() ? cfg.rules_path : check_path,
                                 !check_path.empty() || !vm["rules"].defaulted());
  if (!lbd::valid_offload(cfg.offload)) {
    std::cerr << "lbd: --offload " << cfg.offload << ": expected xdp, xdp-native, xdp-generic or off\n";
    return 2;
  }
  if (!lbd::vip_arp_from_name(cfg.vip_arp)) {
    std::cerr << "lbd: --vip-arp " << cfg.vip_arp << ": expected active, always or never\n";
    return 2;
  }
  if (cfg.announce_table >= 253 && cfg.announce_table <= 255) {
    std::cerr << "lbd: --announce-table " << cfg.announce_table
              << ": that is the kernel's default, main or local table; choose another (1 to 252, or above 255)\n";
    return 2;
  }
  if (!cfg.metrics.empty()) {
    if (const lbd::Status st = lbd::check_listen_address(cfg.metrics); !st.is_ok()) {
      std::cerr << "lbd: " << st.message() << "\n";
      return 2;
    }
  }
  if (cfg.fwmark_queue > 65535) {
    std::cerr << "lbd: --fwmark-queue " << cfg.fwmark_queue << ": expected a queue number, 0 to 65535\n";
    return 2;
  }
  if (cfg.fwmark_fail != "open" && cfg.fwmark_fail != "closed") {
    std::cerr << "lbd: --fwmark-fail " << cfg.fwmark_fail << ": expected open or closed\n";
    return 2;
  }
  if (cfg.workers > lbd::kMaxWorkers) {
    std::cerr << "lbd: --workers " << cfg.workers << ": expected 0 (automatic) or 1 to " << lbd::kMaxWorkers << "\n";
    return 2;
  }
  for (const std::string& a : cfg.sysctls) {
    lbd::Sysctls scratch;
    if (const lbd::Status st = lbd::set_sysctl(scratch, a); !st.is_ok()) {
      std::cerr << "lbd: --" << st.message().substr(std::string_view("--lbd-").size()) << "\n";
      return 2;
    }
  }
  if (cfg.interfaces.empty()) {
    std::cerr << "lbd: at least one --interface is required\nTry 'lbd --help' for more information.\n";
    return 2;
  }
  {
    uint64_t n = 0;
    const auto [p, ec] = std::from_chars(max_conns.data(), max_conns.data() + max_conns.size(), n);
    if (max_conns.empty() || ec != std::errc{} || p != max_conns.data() + max_conns.size() || n < 1 ||
        n > lbd::kMaxConnections) {
      std::cerr << "lbd: --max-connections " << max_conns << ": expected a number from 1 to "
                << lbd::kMaxConnections << "\n";
      return 2;
    }
    cfg.max_connections = uint32_t(n);
  }
  cfg.rules_path_given = !vm["rules"].defaulted();
  return lbd::run_daemon(cfg);
}
