// Host and service names through the system resolver (NSS: /etc/hosts, DNS, /etc/services),
// for what ipvsadm resolves: host names in commands and rules files, and names in listings
// without -n. The pure layers take these as injected functions.
#pragma once

#include <string>

#include "forwarding/packet.hpp"
#include "lb/ctl/ipvsadm_cli.hpp"
#include "lb/ctl/listing.hpp"

namespace lbd {

// An IPv4 address for a host name; false if it has none.
bool resolve_host(const std::string& name, Ipv4& out);
// A port for a service name (/etc/services); nullopt if it has none.
std::optional<uint16_t> resolve_service(const std::string& name);
// Both, for the parser: what lbadm and the rules file resolve names with.
NameLookup system_lookup();

// Reverse names for listings (empty when an address or port has none: printed numerically).
NameResolver system_names();

}  // namespace lbd
