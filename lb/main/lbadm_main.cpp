// lbadm: ipvsadm's command line for lbd. Parses and checks locally (ipvsadm's messages and
// exit codes), sends the canonical command to lbd's control socket, prints ipvsadm's
// formats. Extensions: `--socket PATH` as first argument (or LBD_SOCKET), and
// `--lbd-counters` (lbd's data-path counters, drop reasons included), `--lbd-health` (each
// real's health: state, since when, last check and its result), and `--health SPEC` on
// -A/-E/-a/-e (see health/spec.hpp).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>

#include "health/spec.hpp"
#include "lb/ctl/commands.hpp"
#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/control_server.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/ctl/json_output.hpp"
#include "lb/ctl/keepalived_import.hpp"
#include "lb/ctl/listing.hpp"
#include "lb/ctl/names.hpp"

using namespace lbd;

namespace {

// libipvs ipvs_strerror(): the function-specific message, then the generic table.
std::string ipvs_message(Command cmd, int code, const std::string& lbd_message) {
  const bool svc_op = cmd == Command::kAddService || cmd == Command::kEditService ||
                      cmd == Command::kDeleteService || cmd == Command::kZero;
  const bool dest_op = cmd == Command::kAddReal || cmd == Command::kEditReal ||
                       cmd == Command::kDeleteReal;
  if (cmd == Command::kAddService && code == EEXIST) return "Service already exists";
  if ((cmd == Command::kAddService || cmd == Command::kEditService) && code == ENOENT)
    return "Scheduler or persistence engine not found";
  if (cmd == Command::kStartDaemon && code == EEXIST) return "Daemon has already run";
  if (cmd == Command::kStopDaemon && code == ESRCH) return "No daemon is running";
  if (svc_op && code == ESRCH) return "No such service";
  if (dest_op && code == ESRCH) return "Service not defined";
  if (cmd == Command::kAddReal && code == EEXIST) return "Destination already exists";
  if ((cmd == Command::kEditReal || cmd == Command::kDeleteReal) && code == ENOENT)
    return "No such destination";
  switch (code) {
    case EPERM: return "Permission denied (you must be root)";
    case EINVAL: return "Invalid operation.  Possibly wrong module version, address not unicast, ...";
    case kLbdInvalid: return lbd_message;  // lbd's own checks (health specs): their reason
    case ENOPROTOOPT: return "Protocol not available";
    case ENOMEM: return "Memory allocation problem";
    case EAFNOSUPPORT: return "Operation not supported with specified address family";
    case ERANGE: return std::strerror(ERANGE);
    case ENOSYS: return lbd_message;
    default: return lbd_message.empty() ? std::strerror(code) : lbd_message;
  }
}

// lbd's "ERR <errno> <message>" reply, or nullopt for any other.
std::optional<Status> refusal(const std::string& reply) {
  auto st = reply_status(reply);
  return st && !st->is_ok() ? st : std::nullopt;
}

// -R's exit status for a refusal: 2 for a syntax or check error, 255 for a failed or
// unsupported operation (as ipvsadm's exit(-1)).
int restore_exit_code(int code) { return code == EINVAL || code == kLbdInvalid ? 2 : 255; }

std::string read_all(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// One of lbadm's own arguments (kLbadmOwnOptions, which -h lists).
static bool own(const std::string& arg, std::string_view name) {
  for (const char* o : kLbadmOwnOptions)
    if (name == o) return arg == name;
  throw std::logic_error("lbadm: " + std::string(name) + " is not in kLbadmOwnOptions");
}

int main(int argc, char** argv) {
  const std::string prog = argv[0];
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string socket_path = "/run/lbd/lbd.sock";
  if (const char* env = std::getenv("LBD_SOCKET"); env && *env) socket_path = env;
  // How long lbd may take to answer (seconds): a stopped or wedged lbd is reported, not
  // waited for forever.
  uint64_t timeout_ms = 30000;
  if (const char* env = std::getenv("LBADM_TIMEOUT"); env && std::atoi(env) > 0) timeout_ms = uint64_t(std::atoi(env)) * 1000;
  if (args.size() >= 2 && own(args[0], "--socket")) {
    socket_path = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  // -S writes passwords only when asked: a saved rules file is often world-readable.
  const auto secrets = std::find_if(args.begin(), args.end(), [](const std::string& a) { return own(a, "--lbd-secrets"); });
  const bool show_secrets = secrets != args.end();
  if (show_secrets) args.erase(secrets);
  // --json: the listing, counters or health in lbd's JSON schema (README "JSON output").
  const auto json_flag = std::find_if(args.begin(), args.end(), [](const std::string& a) { return own(a, "--json"); });
  const bool json = json_flag != args.end();
  if (json) args.erase(json_flag);
  try {
    if (!args.empty() && own(args[0], "--from-keepalived")) {
      if (args.size() != 2) {
        std::cerr << prog << ": --from-keepalived takes one file: lbadm --from-keepalived /etc/keepalived/keepalived.conf\n";
        return 2;
      }
      const auto imported = import_keepalived(args[1]);
      if (!imported) {
        std::cerr << prog << ": nothing imported: " << imported.message() << "\n";
        return 2;
      }
      // What is printed loads: checked as -R and lbd's rules file read it.
      std::vector<CliCommand> rules;
      if (const Status st = parse_rules(imported->rules, rules); !st.is_ok()) {
        std::cerr << prog << ": nothing imported: the rules made do not parse (" << st.message() << ")\n";
        return 2;
      }
      for (const auto& n : imported->notes) std::cerr << prog << ": note: " << n << "\n";
      std::cout << imported->rules;
      return 0;
    }
    if (args.size() == 1 && (own(args[0], "--lbd-counters") || own(args[0], "--lbd-health"))) {
      const std::string request = (own(args[0], "--lbd-counters") ? "COUNTERS" : "HEALTH") + std::string(json ? " JSON\n" : "\n");
      const std::string reply = control_request(socket_path, request, timeout_ms);
      if (auto why = refusal(reply)) {
        std::cerr << prog << ": " << why->message() << "\n";
        return 255;
      }
      std::cout << reply_text(reply);
      return 0;
    }
    auto parsed = parse_command(args, prog, system_lookup());
    if (auto* e = std::get_if<CliError>(&parsed)) {
      std::cerr << e->message << "\n";
      return e->exit_code;
    }
    const CliCommand& cmd = std::get<CliCommand>(parsed);
    if (json && cmd.cmd != Command::kList) {
      std::cerr << prog << ": --json goes with -L (also -c, --stats, --rate, --timeout, --daemon), "
                << "--lbd-counters or --lbd-health\n";
      return 2;
    }
    // lbd's table as it runs (with its connections if asked), or nullopt once lbadm said why not.
    auto fetch_dump = [&](bool conns) -> std::optional<Dump> {
      const std::string reply = control_request(socket_path, conns ? "DUMP CONNS\n" : "DUMP\n", timeout_ms);
      if (auto why = refusal(reply)) {
        std::cerr << prog << ": " << why->message() << "\n";
        return std::nullopt;
      }
      Dump dump;
      if (!decode_dump(reply, dump)) {
        std::cerr << "lbadm: unexpected reply from lbd on " << socket_path << "\n";
        return std::nullopt;
      }
      return dump;
    };
    if (cmd.cmd == Command::kSetSysctl && cmd.sysctl.empty()) {  // the list (a change is sent as any command)
      const auto dump = fetch_dump(false);
      if (!dump) return 255;
      std::cout << sysctl_listing(dump->timeouts.sysctl);
      return 0;
    }
    switch (cmd.cmd) {
      case Command::kHelp: std::cout << usage_text(prog); return 0;
      case Command::kVersion:
        std::cout << "lbadm v0.1.0 (ipvsadm v1.31 compatible, lbd userspace IPVS v1.2.1)\n";
        return 0;
      case Command::kList:
      case Command::kSave: {
        auto fetched = fetch_dump(cmd.cmd == Command::kList && cmd.has(kOptConnection));
        if (!fetched) return 255;
        Dump& dump = *fetched;
        if (json) {
          const auto j = listing_json(cmd, dump);
          if (!j) {
            std::cerr << j.message() << "\n";
            return 1;
          }
          std::cout << j->dump(2) << "\n";
          return 0;
        }
        if (cmd.cmd == Command::kSave && !show_secrets) {
          size_t redacted = 0;
          auto redact = [&redacted](std::string& h) {
            const std::string r = health::redact_secrets(h);
            redacted += r != h;
            h = r;
          };
          for (auto& s : dump.services) {
            if (std::string& pw = s.options.health.check.password; !pw.empty()) {
              pw = health::kRedacted;
              ++redacted;
            }
            for (auto& r : s.reals)
              if (r.spec.health) redact(*r.spec.health);
          }
          if (redacted)
            std::cerr << prog << ": " << redacted << " password(s) written as password=" << health::kRedacted
                      << " (which a restore refuses): use password-file=, or -S --lbd-secrets\n";
        }
        const auto text = render_listing(cmd, dump, system_names());
        if (!text) {
          std::cerr << text.message() << "\n";
          return 1;
        }
        std::cout << *text;
        return 0;
      }
      case Command::kRestore: {
        // Names are resolved here, as ipvsadm does (lbd's own parser is numeric-only for
        // this stream): lbd receives each rule in canonical form on its original line.
        const std::string input = read_all(std::cin);
        if (input.size() + 16 > kMaxRequestBytes) {
          std::cerr << prog << ": restore refused, no rule applied: the input is " << input.size()
                    << " bytes, more than lbd takes in one restore (" << (kMaxRequestBytes >> 20)
                    << " MiB): split it into several -R runs\n";
          return 2;
        }
        std::vector<CliCommand> rules;
        if (Status st = parse_rules(input, rules, system_lookup()); !st.is_ok()) {
          std::cerr << prog << ": restore refused, no rule applied: " << st.message() << "\n";
          return restore_exit_code(st.code());  // as lbd's refusals below
        }
        std::vector<std::string> lines(size_t(std::count(input.begin(), input.end(), '\n') + 1));
        for (const auto& r : rules) lines[r.line - 1] = join_args(canonical_args(r));
        std::string canonical;
        for (const auto& l : lines) canonical += l + "\n";
        const auto st = reply_status(control_request(socket_path, restore_request(canonical), timeout_ms));
        if (st && st->is_ok()) return 0;
        std::cerr << prog << ": restore refused, no rule applied: "
                  << (!st || st->message().empty() ? "lbd gave no reason (see its log)" : st->message()) << "\n";
        return restore_exit_code(st ? st->code() : 0);
      }
      default: {
        const auto st = reply_status(control_request(socket_path, encode_args(canonical_args(cmd)) + "\n", timeout_ms));
        if (!st) {
          std::cerr << "lbadm: unexpected reply from lbd on " << socket_path << "\n";
          return 255;
        }
        if (st->is_ok()) return 0;
        std::cerr << ipvs_message(cmd.cmd, st->code(), st->message()) << "\n";
        return 255;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "lbadm: " << e.what() << "\n";
    return 2;  // as ipvsadm's "Can't initialize ipvs"
  }
}
