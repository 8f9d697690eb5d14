// The rules file lbd restores at start and re-reads on SIGHUP (ipvsadm -S format).
#pragma once

#include <string>
#include <vector>

#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/base/status.hpp"

namespace lbd {

// The rules file, parsed (host names resolved as ipvsadm -R resolves them): a regular file
// of at most 64 MiB. `missing_ok`: an absent file is an empty rule set (the default path).
// An error names the file and the line.
Status read_rules(const std::string& path, bool missing_ok, std::vector<CliCommand>& rules);

}  // namespace lbd
