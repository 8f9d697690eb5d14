// The health-check engine: one thread running a Boost.Asio event loop, where every real's
// checks are coroutines on timers (thousands of reals, no thread per check). It never
// touches the data path: the daemon hands it the list of checks (configure()) and takes
// the transitions it produced (take_events(), signalled on an eventfd the daemon polls).
// Checks are scheduled on a fixed grid (start + k × interval, first spread over one
// interval), so a slow check never shifts the ones after it; how late each check starts is
// measured (stats()).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "forwarding/packet.hpp"
#include "health/spec.hpp"
#include "health/state.hpp"
#include "health/target.hpp"

namespace lbd::health {

// The clock of RealStatus's times: monotonic (a step of the wall clock changes no "since").
int64_t health_now_ms();

// A real went down or came back.
struct Event {
  Target target;       // what was checked (the daemon matches it against its real)
  bool up = false;
  std::string reason;  // the last result: "connect: Connection refused", "ok"
};

struct RealStatus {
  uint32_t real_id = 0;
  State state;
  bool checked = false;
  std::string last;            // "ok" or the failure
  uint32_t last_duration_us = 0;
  int64_t last_check_ms = 0;   // steady clock (ms), as health_now_ms()
  int64_t since_ms = 0;        // when the state last changed (or checks began)
};

// The checks' thread has not come back to its loop for `ms`: a check's code blocks it (a
// user or password lookup on a hung NFS or LDAP, say), named in `check` ("" if none ran).
struct Stall {
  uint64_t ms = 0;
  std::string check;  // "exec check of 198.18.0.11:80 (TCP 198.18.0.100:80)"
};

struct EngineStats {
  uint64_t checks = 0, failures = 0;
  uint64_t late_p50_us = 0, late_p99_us = 0, late_max_us = 0;  // over the last 4096 checks
};

class Engine {
 public:
  Engine();  // starts the thread; create it with the daemon's signals already blocked
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The checks to run from now on. A real whose target is unchanged keeps its schedule;
  // one whose check changed keeps its up/down state; new ones start up.
  void configure(std::vector<Target> targets);

  // Readable (eventfd) when events are waiting; take_events() clears it.
  int event_fd() const { return event_fd_; }
  std::vector<Event> take_events();
  std::vector<RealStatus> statuses() const;
  EngineStats stats() const;
  // The watchdog's question, from any thread: is the checks' thread stalled (kStallMs or
  // more since its loop last ran)? While it is, no check runs and no transition is made;
  // forwarding goes on.
  static constexpr int64_t kStallMs = 2000;
  std::optional<Stall> stalled() const;

  // Runs `cmd arg...` as `user` (notify commands), after the commands queued under the
  // same `key` have ended, killed after 30 s; a failure is logged. From any thread.
  void run_command(std::string key, std::string cmd, std::string user, std::vector<std::string> args);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int event_fd_ = -1;
};

}  // namespace lbd::health
