// A service's real list as the service table keeps it (newest first), driving a scheduler
// through IPVS's add/delete/edit hooks, for exact pick-sequence tests.
#pragma once

#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/scheduler.hpp"

namespace lbd::test {

struct SchedHarness {
  std::unique_ptr<sched::Scheduler> s;
  std::vector<std::unique_ptr<sched::DestView>> storage;
  std::vector<const sched::DestView*> views;  // list order
  std::vector<std::string> names;             // parallel to views

  explicit SchedHarness(const char* name) : s(sched::make_scheduler(name)) {}
  // Adds the reals one by one in the order given (so the list reads newest first).
  SchedHarness(const char* name, std::initializer_list<std::pair<const char*, int>> reals)
      : SchedHarness(name) {
    for (const auto& [n, w] : reals) add(n, w);
  }

  sched::DestView& add(const std::string& name, int weight) {  // at the head, like IPVS
    storage.push_back(std::make_unique<sched::DestView>());
    storage.back()->weight = storage.back()->last_weight = weight;
    storage.back()->addr = 0xc6120000u + 10 + uint32_t(storage.size());  // 198.18.0.11, .12, ...: distinct reals
    storage.back()->port = 80;
    views.insert(views.begin(), storage.back().get());
    names.insert(names.begin(), name);
    s->real_added(views, 0);
    return *storage.back();
  }
  void remove(const std::string& name) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != name) continue;
      const auto* gone = views[i];
      views.erase(views.begin() + long(i));
      names.erase(names.begin() + long(i));
      s->real_removed(views, gone, i);
      return;
    }
  }
  void edit(const std::string& name, int weight) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != name) continue;
      auto* d = const_cast<sched::DestView*>(views[i]);
      d->weight = weight;
      if (weight != 0) d->last_weight = weight;  // as the service table (IPVS __ip_vs_update_dest)
      s->real_edited(views, i);
    }
  }
  sched::DestView& view(const std::string& name) {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return *const_cast<sched::DestView*>(views[i]);
    throw std::runtime_error("no such real " + name);
  }
  // The next n picks as names ("-" when none); `open` = each pick opens an active connection.
  std::string picks(int n, bool open = false) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      auto idx = s->pick({}, views);
      if (!out.empty()) out += ' ';
      if (!idx) {
        out += '-';
        continue;
      }
      out += names[*idx];
      if (open) ++const_cast<sched::DestView*>(views[*idx])->active_conns;
    }
    return out;
  }
};

}  // namespace lbd::test
