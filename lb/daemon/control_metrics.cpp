// lbd --metrics (control.hpp): the pages the HTTP server's thread serves, rebuilt on the
// control thread after each gather (every 2 s: what the workers and the fast path counted),
// each health event and each change. A scrape or a page load reads the last one.
#include <unistd.h>

#include "lb/base/log.hpp"
#include "lb/ctl/metrics.hpp"
#include "lb/daemon/control.hpp"
#include "lb/io/status_page.hpp"

namespace lbd {

// A page is rebuilt only while someone reads it (asked for in the last minute: a scrape
// interval or a page open), and once at start; an idle --metrics costs nothing.
void Control::publish_status() {
  if (!http_) return;
  constexpr uint64_t kReaderGoneMs = 60000;
  const bool metrics = http_->wanted("/metrics", kReaderGoneMs) || !metrics_built_;
  const bool page = http_->wanted("/status.json", kReaderGoneMs) || !metrics_built_;
  if (!metrics && !page) return;
  metrics_built_ = true;
  const Dump dump = make_dump();
  const std::vector<Counter> cs = counters();
  const std::vector<RealHealthView> health = health_views();
  const std::string offload = offload_name();
  if (metrics)
    http_->publish("/metrics", {"text/plain; version=0.0.4; charset=utf-8",
                                prometheus_text({.dump = dump, .counters = cs, .health = health, .offload = offload,
                                                 .capacity = cfg_.max_connections, .version = LBD_VERSION})});
  if (!page) return;
  CliCommand all;
  all.cmd = Command::kList;
  const auto stall = health_ ? health_->stalled() : std::nullopt;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  nlohmann::ordered_json status = {{"schema", kJsonSchema},
                           {"version", LBD_VERSION},
                           {"hostname", host},
                           {"capacity", cfg_.max_connections},
                           {"listing", listing_json(all, dump).value()},
                           {"counters", counters_json(offload, cs)},
                           {"health", health_json(health, stall ? stall->ms : 0, stall ? stall->check : "")}};
  http_->publish("/status.json", {"application/json", status.dump()});
}

// The page's files once: they never change while lbd runs.
void Control::start_metrics() {
  if (cfg_.metrics.empty()) return;
  auto h = HttpServer::start(cfg_.metrics);
  if (!h) throw std::runtime_error(h.message());
  http_ = std::move(h).value();
  for (const StatusPageFile& f : status_page_files()) http_->publish(f.path, {f.content_type, f.bytes});
  publish_status();
  LBD_LOG(kInfo, "metrics", "serving /metrics and the status page on http://{}/", http_->local_endpoint());
}

}  // namespace lbd
