// lbd: the director daemon. Options are parsed here (Boost.Program_options stays in this
// file) into a DaemonConfig; everything else lives in daemon.cpp.
#include <boost/program_options.hpp>

#include <iostream>

#include "lb/daemon.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  lbd::DaemonConfig cfg;
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
      ("max-connections", po::value<uint32_t>(&cfg.max_connections)->default_value(cfg.max_connections),
       "connection table capacity (92 bytes each)")
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
  if (cfg.interfaces.empty()) {
    std::cerr << "lbd: at least one --interface is required\nTry 'lbd --help' for more information.\n";
    return 2;
  }
  if (cfg.max_connections == 0) {
    std::cerr << "lbd: --max-connections must be at least 1\n";
    return 2;
  }
  cfg.rules_path_given = !vm["rules"].defaulted();
  return lbd::run_daemon(cfg);
}
