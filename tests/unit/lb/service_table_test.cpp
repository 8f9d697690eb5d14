// The control API: IPVS's errors for every refusal, nothing changed by a refusal, list order,
// and reals outliving their deletion while connections refer to them.
#include <catch2/catch.hpp>

#include <cerrno>
#include <deque>
#include <optional>

#include "frames.hpp"
#include "lb/core/service_table.hpp"

using namespace lbd;
using namespace lbd::test;

namespace {
const ServiceKey kSvc{kProtoTcp, ip("198.18.0.100"), 80};
RealSpec real(const char* a, int32_t w = 1) { return RealSpec{ip(a), 80, FwdMethod::kRoute, w}; }
std::vector<std::string> reals_of(ServiceTable& t) {
  std::vector<std::string> v;
  for (uint32_t id : t.find(kSvc)->reals) v.push_back(to_string(t.real(id).addr));
  return v;
}
}  // namespace

TEST_CASE("services and reals are refused with IPVS's errno and nothing changes") {
  ServiceTable t;
  const auto g0 = t.generation();
  CHECK(t.add_service(kSvc, {"nosuch"}).code() == ENOENT);
  CHECK(t.find(kSvc) == nullptr);
  CHECK(t.generation() == g0);
  REQUIRE(t.add_service(kSvc, {"rr"}).is_ok());
  CHECK(t.add_service(kSvc, {"wlc"}).code() == EEXIST);
  CHECK(t.find(kSvc)->options.scheduler == "rr");
  const ServiceKey other{kProtoUdp, ip("198.18.0.100"), 80};
  CHECK(t.edit_service(other, {"rr"}).code() == ESRCH);
  CHECK(t.delete_service(other).code() == ESRCH);
  CHECK(t.add_real(other, real("198.18.0.11")).code() == ESRCH);
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  CHECK(t.add_real(kSvc, real("198.18.0.11", 5)).code() == EEXIST);
  CHECK(t.edit_real(kSvc, real("198.18.0.12")).code() == ENOENT);
  CHECK(t.delete_real(kSvc, ip("198.18.0.12"), 80).code() == ENOENT);
  CHECK(t.edit_service(kSvc, {"nosuch"}).code() == ENOENT);
  CHECK(t.find(kSvc)->options.scheduler == "rr");
  CHECK(reals_of(t) == std::vector<std::string>{"198.18.0.11"});
}

TEST_CASE("new reals go to the head of the list, as in IPVS") {
  ServiceTable t;
  REQUIRE(t.add_service(kSvc, {}).is_ok());
  for (auto a : {"198.18.0.11", "198.18.0.12", "198.18.0.13"}) REQUIRE(t.add_real(kSvc, real(a)).is_ok());
  CHECK(reals_of(t) == std::vector<std::string>{"198.18.0.13", "198.18.0.12", "198.18.0.11"});
  REQUIRE(t.delete_real(kSvc, ip("198.18.0.12"), 80).is_ok());
  CHECK(reals_of(t) == std::vector<std::string>{"198.18.0.13", "198.18.0.11"});
}

TEST_CASE("a deleted real stays allocated while connections refer to it") {
  ServiceTable t;
  REQUIRE(t.add_service(kSvc, {}).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  Real& r = t.real(t.find(kSvc)->reals[0]);
  const uint32_t id = r.id;
  t.bind_conn(r, false);
  REQUIRE(t.delete_real(kSvc, ip("198.18.0.11"), 80).is_ok());
  CHECK(t.real(id).in_use);
  CHECK(t.real(id).deleted);
  CHECK(t.real(id).dest.active_conns == 1);
  // A new real does not reuse the slot while it is referenced.
  REQUIRE(t.add_real(kSvc, real("198.18.0.12")).is_ok());
  CHECK(t.find(kSvc)->reals[0] != id);
  t.unbind_conn(t.real(id), false);
  CHECK_FALSE(t.real(id).in_use);
}

TEST_CASE("flush removes every service; zero clears counters") {
  ServiceTable t;
  REQUIRE(t.add_service(kSvc, {}).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  t.find(kSvc)->stats.inpkts = 5;
  CHECK(t.zero(kSvc).is_ok());
  CHECK(t.find(kSvc)->stats.inpkts == 0);
  t.flush();
  CHECK(t.find(kSvc) == nullptr);
  CHECK(t.zero(kSvc).code() == ESRCH);
}

TEST_CASE("re-adding a deleted real that connections still use revives it (IPVS trash)") {
  ServiceTable t;
  REQUIRE(t.add_service(kSvc, {}).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  const uint32_t id = t.find(kSvc)->reals[0];
  t.bind_conn(t.real(id), false);
  t.flush();  // lbadm -C
  REQUIRE(t.real(id).deleted);
  REQUIRE(t.add_service(kSvc, {"rr"}).is_ok());  // lbadm -R
  REQUIRE(t.add_real(kSvc, real("198.18.0.11", 4)).is_ok());
  CHECK(t.find(kSvc)->reals == std::deque<uint32_t>{id});
  CHECK_FALSE(t.real(id).deleted);
  CHECK(t.real(id).dest.available);
  CHECK(t.real(id).dest.weight == 4);
  CHECK(t.real(id).dest.active_conns == 1);
  CHECK(t.real(id).service_id == t.find(kSvc)->id);
  // A different service key does not revive it.
  REQUIRE(t.delete_real(kSvc, ip("198.18.0.11"), 80).is_ok());
  const ServiceKey other{kProtoTcp, ip("198.18.0.101"), 80};
  REQUIRE(t.add_service(other, {}).is_ok());
  REQUIRE(t.add_real(other, real("198.18.0.11")).is_ok());
  CHECK(t.find(other)->reals[0] != id);
}

TEST_CASE("a batch of adds and deletes ends with the same table as the changes one by one") {
  auto run = [](bool batched) {
    ServiceTable t;
    REQUIRE(t.add_service(kSvc, {"wrr"}).is_ok());
    std::optional<ServiceTable::Batch> batch;
    if (batched) batch.emplace(t);
    for (const char* a : {"198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.15"})
      REQUIRE(t.add_real(kSvc, real(a)).is_ok());
    REQUIRE(t.delete_real(kSvc, ip("198.18.0.12"), 80).is_ok());
    REQUIRE(t.delete_real(kSvc, ip("198.18.0.14"), 80).is_ok());
    CHECK(t.delete_real(kSvc, ip("198.18.0.14"), 80).code() == ENOENT);  // gone at once
    REQUIRE(t.add_real(kSvc, real("198.18.0.12", 3)).is_ok());           // back, at the head
    CHECK(t.add_real(kSvc, real("198.18.0.13")).code() == EEXIST);
    REQUIRE(t.edit_real(kSvc, real("198.18.0.15", 2)).is_ok());
    batch.reset();
    const Service& s = *t.find(kSvc);
    REQUIRE(s.views.size() == s.reals.size());
    for (size_t i = 0; i < s.reals.size(); ++i) CHECK(s.views[i] == &t.real(s.reals[i]).dest);
    CHECK(t.find_real(kSvc, ip("198.18.0.12"), 80)->dest.weight == 3);
    CHECK_FALSE(t.find_real(kSvc, ip("198.18.0.14"), 80));
    return reals_of(t);
  };
  const auto one_by_one = run(false);
  CHECK(one_by_one == std::vector<std::string>{"198.18.0.12", "198.18.0.15", "198.18.0.13", "198.18.0.11"});
  CHECK(run(true) == one_by_one);
}

// Two workers' copies of the same services (same changes, same ids) sharing each real's
// connection total, as lbd's workers do: a threshold holds for every worker's connections
// (IPVS's one count per real), while lc compares each copy's own connections (its shard).
TEST_CASE("workers' copies share each real's total: thresholds count every worker's connections") {
  ServiceTable a, b;
  for (ServiceTable* t : {&a, &b}) {
    t->defer_release();
    REQUIRE(t->add_service(kSvc, {"lc"}).is_ok());
    RealSpec r1 = real("198.18.0.11"), r2 = real("198.18.0.12");
    r1.u_threshold = 2;  // -x 2: overloaded at 2 connections, back below 3/4 of it
    REQUIRE(t->add_real(kSvc, r1).is_ok());
    REQUIRE(t->add_real(kSvc, r2).is_ok());
  }
  std::deque<sched::SharedDest> shared(a.real_slots());
  for (ServiceTable* t : {&a, &b})
    t->for_each_real([&](Real& r) { t->share_counts(r, &shared[r.id]); });
  Real& a11 = *a.find_real(kSvc, ip("198.18.0.11"), 80);
  Real& b11 = *b.find_real(kSvc, ip("198.18.0.11"), 80);
  Real& b12 = *b.find_real(kSvc, ip("198.18.0.12"), 80);
  REQUIRE(a11.id == b11.id);
  const Service& sb = *b.find(kSvc);
  auto pick_b = [&] { return sb.reals[*sb.scheduler->pick({}, sb.views)]; };
  // Worker a has one connection to .11; b's own counts are still empty, and its lc
  // picks by them: .12 is first in IPVS list order (newest first) on a tie.
  a.bind_conn(a11, false);
  CHECK(shared[a11.id].conns == 1);
  CHECK((b11.dest.active_conns == 0 && b12.dest.active_conns == 0));
  CHECK(pick_b() == b12.id);
  CHECK_FALSE(b11.dest.is_overloaded());
  // A second one, in worker b: .11 reaches its threshold for both copies.
  b.bind_conn(b11, false);
  CHECK(a11.dest.is_overloaded());
  CHECK(b11.dest.is_overloaded());
  CHECK_FALSE(a11.dest.schedulable());
  CHECK(pick_b() == b12.id);
  // Moving to InActConn changes no total; worker a's connection ending does: 1 < 3/4 of 2,
  // the overload ends for both.
  b.set_inactive(b11, true);
  CHECK(shared[a11.id].conns == 2);
  CHECK(b11.dest.is_overloaded());
  a.unbind_conn(a11, false);
  CHECK_FALSE(b11.dest.is_overloaded());
  CHECK(b11.dest.schedulable());
  b.unbind_conn(b11, true);
  CHECK(shared[a11.id].conns == 0);
  // A real without a threshold shares nothing: no cache line moves between workers.
  b.bind_conn(b12, false);
  CHECK(shared[b12.id].conns == 0);
  // Given one (-e -x 5), each copy brings the connections it has to the total; without
  // it again, takes them back.
  RealSpec e = real("198.18.0.12");
  e.u_threshold = 5;
  for (ServiceTable* t : {&a, &b}) REQUIRE(t->edit_real(kSvc, e).is_ok());
  CHECK(shared[b12.id].conns == 1);
  a.bind_conn(*a.find_real(kSvc, ip("198.18.0.12"), 80), false);
  CHECK(shared[b12.id].conns == 2);
  e.u_threshold = 0;
  REQUIRE(b.edit_real(kSvc, e).is_ok());
  CHECK(shared[b12.id].conns == 1);  // a's, until a takes the edit too
  REQUIRE(a.edit_real(kSvc, e).is_ok());
  CHECK(shared[b12.id].conns == 0);
}

TEST_CASE("deferred release: a deleted real is freed only when asked, so copies keep the same ids") {
  ServiceTable a, b;
  for (ServiceTable* t : {&a, &b}) {
    t->defer_release();
    REQUIRE(t->add_service(kSvc, {"rr"}).is_ok());
    REQUIRE(t->add_real(kSvc, real("198.18.0.11")).is_ok());
  }
  Real& ra = *a.find_real(kSvc, ip("198.18.0.11"), 80);
  a.bind_conn(ra, false);  // worker a has a connection to it, worker b none
  const uint32_t id = ra.id;
  for (ServiceTable* t : {&a, &b}) REQUIRE(t->delete_real(kSvc, ip("198.18.0.11"), 80).is_ok());
  CHECK(a.unreferenced_deleted().empty());
  CHECK(b.unreferenced_deleted() == std::vector<uint32_t>{id});
  // b must not reuse the id while a's connection lives: a new real gets another id in both.
  for (ServiceTable* t : {&a, &b}) REQUIRE(t->add_real(kSvc, real("198.18.0.12")).is_ok());
  CHECK(a.find_real(kSvc, ip("198.18.0.12"), 80)->id == b.find_real(kSvc, ip("198.18.0.12"), 80)->id);
  CHECK(b.find_real(kSvc, ip("198.18.0.12"), 80)->id != id);
  a.unbind_conn(a.real(id), false);
  CHECK(a.unreferenced_deleted() == std::vector<uint32_t>{id});
  for (ServiceTable* t : {&a, &b}) t->release_deleted(id);
  CHECK((a.trash() == 0 && b.trash() == 0));
  CHECK_FALSE(a.real(id).in_use);
  CHECK_FALSE(b.real(id).in_use);
}

TEST_CASE("-b reaches the scheduler; an -E that changes only -b keeps its state (IPVS reads the flags per pick)") {
  ServiceTable t;
  ServiceOptions opt{"rr"};
  opt.sched_flags = kSchedFlag1;
  REQUIRE(t.add_service(kSvc, opt).is_ok());
  const sched::Scheduler* before = t.find(kSvc)->scheduler.get();
  CHECK(before->options().flags == kSchedFlag1);
  opt.sched_flags = kSchedFlag2;
  REQUIRE(t.edit_service(kSvc, opt).is_ok());
  CHECK(t.find(kSvc)->scheduler.get() == before);  // the same scheduler: rr's cursor kept
  CHECK(before->options().flags == kSchedFlag2);
  opt.scheduler = "wrr";
  REQUIRE(t.edit_service(kSvc, opt).is_ok());
  CHECK(t.find(kSvc)->scheduler->name() == "wrr");  // another scheduler: a new one, with the flags
  CHECK(t.find(kSvc)->scheduler->options().flags == kSchedFlag2);
}

TEST_CASE("a real's view for the hashing schedulers: its address, port and IPVS's last_weight") {
  ServiceTable t;
  REQUIRE(t.add_service(kSvc, {"mh"}).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.11", 3)).is_ok());
  const Service& s = *t.find(kSvc);
  const sched::DestView& d = t.real(s.reals.front()).dest;
  CHECK(d.addr == ip("198.18.0.11").host());
  CHECK(d.port == 80);
  CHECK(d.last_weight == 3);
  REQUIRE(t.edit_real(kSvc, real("198.18.0.11", 0)).is_ok());  // quiesced: the last weight stays
  CHECK(d.weight == 0);
  CHECK(d.last_weight == 3);
  REQUIRE(t.edit_real(kSvc, real("198.18.0.11", 5)).is_ok());
  CHECK(d.last_weight == 5);
  REQUIRE(t.add_real(kSvc, real("198.18.0.12", 0)).is_ok());  // added with 0: last_weight 0
  CHECK(t.real(t.find(kSvc)->reals.front()).dest.last_weight == 0);
}

TEST_CASE("serving_vips: a VIP is announced while a service of it has a real that takes connections") {
  ServiceTable t;
  const ServiceKey other{kProtoTcp, ip("198.18.0.101"), 443};
  const ServiceKey second_port{kProtoUdp, ip("198.18.0.100"), 53};
  REQUIRE(t.add_service(kSvc, {"rr"}).is_ok());
  REQUIRE(t.add_service(other, {"rr"}).is_ok());
  CHECK(t.serving_vips().empty());  // no real at all
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.12")).is_ok());
  REQUIRE(t.add_real(other, real("198.18.0.13")).is_ok());
  CHECK(t.serving_vips() == std::vector<IpAddr>{ip("198.18.0.100"), ip("198.18.0.101")});
  // Quiesced (weight 0) or down by its checks: no new connection, not served.
  REQUIRE(t.edit_real(other, real("198.18.0.13", 0)).is_ok());
  CHECK(t.serving_vips() == std::vector<IpAddr>{ip("198.18.0.100")});
  t.set_health(*t.find_real(kSvc, ip("198.18.0.11"), 80), false);
  CHECK(t.serving_vips() == std::vector<IpAddr>{ip("198.18.0.100")});  // .12 still takes them
  t.set_health(*t.find_real(kSvc, ip("198.18.0.12"), 80), false);
  CHECK(t.serving_vips().empty());
  // Another service of the same VIP that serves keeps it announced.
  REQUIRE(t.add_service(second_port, {"rr"}).is_ok());
  REQUIRE(t.add_real(second_port, RealSpec{ip("198.18.0.11"), 53, FwdMethod::kRoute, 1}).is_ok());
  CHECK(t.serving_vips() == std::vector<IpAddr>{ip("198.18.0.100")});
  REQUIRE(t.delete_real(second_port, ip("198.18.0.11"), 53).is_ok());
  CHECK(t.serving_vips().empty());
}

TEST_CASE("start=down: a checked real is added down until its checks pass (keepalived's alpha)") {
  ServiceTable t;
  ServiceOptions opt("rr");
  auto h = health::parse_service_health("check=tcp,start=down");
  REQUIRE(h);
  opt.health = *h;
  REQUIRE(t.add_service(kSvc, opt).is_ok());
  REQUIRE(t.add_real(kSvc, real("198.18.0.11")).is_ok());
  Real* r = t.find_real(kSvc, ip("198.18.0.11"), 80);
  REQUIRE(r);
  CHECK(r->health_down);
  CHECK_FALSE(r->dest.available);
  t.set_health(*r, true);
  CHECK(r->dest.available);
  // A real overriding it, and a service without checks (nothing would ever bring it up).
  REQUIRE(t.add_real(kSvc, RealSpec(ip("198.18.0.12"), 80, FwdMethod::kRoute, 1, "start=up")).is_ok());
  CHECK_FALSE(t.find_real(kSvc, ip("198.18.0.12"), 80)->health_down);
  const ServiceKey other{kProtoTcp, ip("198.18.0.101"), 80};
  ServiceOptions unchecked("rr");
  unchecked.health = *health::parse_service_health("start=down");
  REQUIRE(t.add_service(other, unchecked).is_ok());
  REQUIRE(t.add_real(other, real("198.18.0.11")).is_ok());
  CHECK_FALSE(t.find_real(other, ip("198.18.0.11"), 80)->health_down);
  CHECK(health::format_service_health(*h) == "check=tcp,start=down");
}
