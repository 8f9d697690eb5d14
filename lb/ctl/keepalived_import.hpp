// lbadm --from-keepalived FILE: keepalived.conf's LVS part (virtual_server, real_server,
// virtual_server_group with plain addresses, the checkers lbd has) as lbd rules: ipvsadm
// lines with --health, keepalived's defaults written out (protocol UDP, lb_kind NAT, wlc,
// delay_loop 60, connect_timeout 5, retry 1). VRRP and other non-LVS blocks are skipped and
// said so; anything else is refused whole, with its file, line and keyword.
#pragma once

#include <string>
#include <vector>

#include "lb/base/status.hpp"

namespace lbd {

struct KeepalivedImport {
  std::string rules;                // for lbadm -R or the rules file (# comments included)
  std::vector<std::string> notes;   // what was skipped or mapped with a difference
};

// Reads FILE (and what it includes); on error nothing is returned but the reason:
// "FILE:LINE: KEYWORD: why".
Result<KeepalivedImport> import_keepalived(const std::string& path);
// The same from text (tests), `name` standing for its file; includes are refused.
Result<KeepalivedImport> import_keepalived_text(const std::string& text, const std::string& name);

}  // namespace lbd
