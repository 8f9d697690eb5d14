// The kinds of check (check=tcp, http, mysql, exec): each is one file in health/checks/
// defining a CheckKind, and one entry in health/checks/list.cpp. The engine knows none of
// them by name: it runs whatever kind a real's CheckSpec points to.
#pragma once

#include <span>
#include <string_view>

namespace lbd::health {

struct CheckSpec;
struct ProbeContext;  // health/probe.hpp: the running check's target and the engine's marker
struct CheckTask;     // health/probe.hpp: the check's conversation, a coroutine

struct CheckKind {
  const char* name;  // check=NAME
  // Why a check of this kind cannot run as specified ("check=exec needs cmd="), or nullptr.
  const char* (*invalid)(const CheckSpec& spec);
  // Starts one check of a real; the engine awaits the task, which holds the deadline.
  CheckTask (*start)(ProbeContext& ctx);
};

// Every kind, in the order `check=`'s error message lists them.
std::span<const CheckKind* const> check_kinds();
// The kind called `name`, or nullptr.
const CheckKind* find_check(std::string_view name);

}  // namespace lbd::health
