// The rules file; see rules_file.hpp (and daemon.hpp for --check-rules).
#include "lb/daemon/rules_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "lb/ctl/commands.hpp"
#include "lb/daemon/daemon.hpp"
#include "lb/base/log.hpp"
#include "lb/base/unique_fd.hpp"
#include "lb/ctl/names.hpp"

namespace lbd {
namespace {

// The largest rules file lbd reads (about 600,000 rules).
constexpr off_t kMaxRulesBytes = 64 << 20;

// The rules file's text: a regular file (a FIFO or a device would hang or never end),
// at most kMaxRulesBytes; or why not, naming the file.
Result<std::string> read_rules_text(const std::string& path) {
  const UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) return Status::error(errno, fmt::format("{}: {}", path, std::strerror(errno)));
  struct stat st{};
  if (fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) return Status::invalid(fmt::format("{}: not a regular file", path));
  if (st.st_size > kMaxRulesBytes)
    return Status::error(EFBIG, fmt::format("{}: {} bytes, more than the {} MiB lbd reads", path, st.st_size,
                                            kMaxRulesBytes >> 20));
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
    if (n <= 0) break;
    got += size_t(n);
  }
  if (got != text.size()) return Status::error(EIO, fmt::format("{}: short read", path));
  if ((st.st_mode & 044) && text.find("password=") != std::string::npos)
    LBD_LOG(kWarn, "rules", "{} holds a password= and others can read it: chmod 600 it, or use password-file=", path);
  return text;
}

}  // namespace

Status read_rules(const std::string& path, bool missing_ok, std::vector<CliCommand>& rules) {
  rules.clear();
  const auto text = read_rules_text(path);
  if (!text) {
    if (missing_ok && text.status().code() == ENOENT) return Status::ok();
    return Status::error(EINVAL, text.message());
  }
  const Status st = parse_rules(*text, rules, system_lookup());
  return st.is_ok() ? st : Status::error(st.code(), fmt::format("{}: {}", path, st.message()));
}

// A start's rules: read as above and applied whole to `services` (empty at start), or
// nothing applied. `rules_read` says how many rules the file held.
Status load_rules(const std::string& path, bool missing_ok, ServiceTable& services, Timeouts& timeouts,
                  size_t& rules_read) {
  std::vector<CliCommand> rules;
  Status st = read_rules(path, missing_ok, rules);
  if (st.is_ok()) st = apply_rules_atomically(rules, services, timeouts);
  rules_read = rules.size();
  return st;
}

int check_rules_file(const std::string& path, bool required) {
  ServiceTable scratch;
  Timeouts timeouts;
  size_t rules = 0;
  if (Status st = load_rules(path, !required, scratch, timeouts, rules); !st.is_ok()) {
    std::fprintf(stderr, "lbd: rules: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("%s: %zu rules, %zu services: would load\n", path.c_str(), rules, scratch.service_count());
  return 0;
}

}  // namespace lbd
