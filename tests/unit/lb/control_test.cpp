// The control socket as a hostile or careless client meets it: arguments arrive intact
// whatever bytes they hold, a client that never reads its reply costs the loop nothing, a
// listing is produced in steps, clients are bounded in number and in time, and a path that
// is not a socket is never removed. Real Unix sockets in a scratch directory; no root.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "lb/ctl/control_protocol.hpp"
#include "lb/ctl/control_server.hpp"
#include "frames.hpp"
#include "lb/base/log.hpp"

using namespace lbd;

namespace {

std::string scratch_dir() {
  char tmpl[] = "/tmp/lbd-control-test.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

int connect_to(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Runs the server's side of whatever is ready now (what the daemon's loop does).
void serve(ControlServer& srv, uint64_t now_ms) {
  for (int round = 0; round < 64; ++round) {
    std::vector<pollfd> fds = srv.poll_fds();
    if (poll(fds.data(), fds.size(), 0) <= 0) return;
    for (const pollfd& p : fds) {
      if (!p.revents) continue;
      const uint64_t v = srv.version();
      srv.on_event(p.fd, p.revents, now_ms);
      if (srv.version() != v) break;
    }
  }
}

std::string read_all_from(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, size_t(n));
  return s;
}

}  // namespace

TEST_CASE("control arguments: tabs, newlines and '%' inside an argument arrive intact") {
  const std::vector<std::string> args{"-A", "-t", "198.18.0.100:80", "-s", "rr\t-p", "--health",
                                      "host=a\nb,path=/%0d%0a", ""};
  const std::string line = encode_args(args);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(std::count(line.begin(), line.end(), '\t') == long(args.size() - 1));
  std::vector<std::string> back;
  REQUIRE(decode_args(line, back));
  CHECK(back == args);
  CHECK_FALSE(decode_args("-A\t%4", back));    // cut escape
  CHECK_FALSE(decode_args("-A\t%zz", back));   // not hex
  CHECK_FALSE(decode_args("-A\r-t", back));    // a raw control byte is never sent
}

TEST_CASE("control server: a client that never reads its reply does not hold the loop or others") {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/lbd.sock";
  const std::string big(8 << 20, 'x');
  ControlServer srv(path, [&](const std::string& req) -> Reply {
    if (req == "BIG") return {big, {}};
    if (req == "STEPS") {
      auto n = std::make_shared<int>(0);
      return {"head\n", [n](std::string& out) {
                out += "step " + std::to_string((*n)++) + "\n";
                return *n == 1000;
              }};
    }
    return {"OK " + req + "\n", {}};
  });
  const int lazy = connect_to(path);
  REQUIRE(write(lazy, "BIG\n", 4) == 4);
  const auto t0 = std::chrono::steady_clock::now();
  serve(srv, 1000);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < std::chrono::milliseconds(200));  // the loop went on (was 1 s per request, blocking)
  CHECK(srv.clients() == 1);                     // still waiting for it to read
  // Another client is answered meanwhile, and a stepped listing arrives whole.
  const int other = connect_to(path);
  REQUIRE(write(other, "PING\n", 5) == 5);
  serve(srv, 1000);
  CHECK(read_all_from(other) == "OK PING\n");
  close(other);
  const int steps = connect_to(path);
  REQUIRE(write(steps, "STEPS\n", 6) == 6);
  std::string got;
  for (int i = 0; i < 200 && got.find("step 999\n") == std::string::npos; ++i) {
    serve(srv, 1000);
    char buf[65536];
    const ssize_t n = recv(steps, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, size_t(n));
  }
  CHECK(got.rfind("head\nstep 0\nstep 1\n", 0) == 0);
  CHECK(got.find("step 999\n") != std::string::npos);
  close(steps);
  // The lazy client, silent past the reply timeout, is dropped.
  srv.tick(1000 + ControlServer::kReplyTimeoutMs + 1);
  CHECK(srv.clients() == 0);
  CHECK(srv.dropped_clients() == 1);
  close(lazy);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("control server: idle and surplus clients are refused; a request over 16 MiB gets a reason") {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/lbd.sock";
  ControlServer srv(path, [](const std::string&) -> Reply { return {"OK\n", {}}; });
  std::vector<int> idle;
  for (size_t i = 0; i < ControlServer::kMaxClients; ++i) idle.push_back(connect_to(path));
  serve(srv, 0);
  CHECK(srv.clients() == ControlServer::kMaxClients);
  const int surplus = connect_to(path);
  serve(srv, 0);
  const std::string busy = read_all_from(surplus);
  CHECK(busy.rfind("ERR 16 ", 0) == 0);  // EBUSY, with a reason
  close(surplus);
  srv.tick(ControlServer::kRequestTimeoutMs + 1);  // none sent a whole request in time
  CHECK(srv.clients() == 0);
  for (int fd : idle) close(fd);
  const int huge = connect_to(path);
  const std::string chunk(1 << 20, 'a');  // no newline: one endless request line
  fcntl(huge, F_SETFL, O_NONBLOCK);
  std::string reply;
  for (int i = 0; i < 2000 && reply.empty(); ++i) {
    [[maybe_unused]] auto w = send(huge, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    serve(srv, 0);
    char buf[4096];
    const ssize_t n = recv(huge, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) reply.assign(buf, size_t(n));
  }
  CHECK(reply.rfind("ERR 7 request larger than 16 MiB", 0) == 0);
  close(huge);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("control server: --socket naming a regular file is refused and the file is kept") {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/precious";
  std::ofstream(path) << "keep me\n";
  CHECK_THROWS_WITH(ControlServer(path, [](const std::string&) -> Reply { return {}; }),
                    Catch::Contains("not a socket"));
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  CHECK(line == "keep me");
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("a log message is one line: control bytes are written as \\xNN") {
  CHECK(log::one_line("applied: -A -t 198.18.0.100:81 -s rr\t-p\nlbd: info: forged") ==
        "applied: -A -t 198.18.0.100:81 -s rr\\x09-p\\x0albd: info: forged");
  CHECK(log::one_line("\x1b[2Kcaf\xc3\xa9") == "\\x1b[2Kcaf\xc3\xa9");  // UTF-8 stays readable
}

TEST_CASE("the control dump carries each service's options and each real's spec through its text") {
  Dump d;
  d.table_size = 4096;
  DumpService plain{{kProtoTcp, test::ip("198.18.0.100"), 80}, std::string("wlc"), {1, 2, 3, 4, 5}, {}};
  DumpReal r;
  r.spec = RealSpec(test::ip("198.18.0.11"), 80, FwdMethod::kTunnel, 3, std::string("interval=0.5,port=8080"));
  r.spec.u_threshold = 100;
  r.spec.l_threshold = 50;
  r.spec.tun = TunnelSpec{TunType::kGue, 6080, TunCsum::kRemCsum};
  r.active = 7;
  r.persist_conns = 2;
  r.flags = DumpReal::kDown;
  plain.reals.push_back(r);
  DumpService checked{{kProtoUdp, test::ip("198.18.0.100"), 53}, std::string("rr"), {}, {}};
  checked.options.persistent = 120;
  checked.options.netmask = test::ip("255.255.255.0");
  checked.options.ops = true;
  checked.options.sched_flags = kSchedFlag1;
  auto h = health::parse_service_health("check=mysql,user=u,password=secret,sorry=198.18.0.50,sorry-fwd=m");
  REQUIRE(h);
  checked.options.health = *h;
  DumpReal masq;
  masq.spec = RealSpec(test::ip("198.18.0.12"), 5353, FwdMethod::kMasq, 1, std::string());
  checked.reals.push_back(masq);
  d.services = {plain, checked};
  const std::string text = encode_dump(d);
  Dump back;
  REQUIRE(decode_dump(text, back));
  REQUIRE(back.services.size() == 2);
  CHECK(encode_dump(back) == text);
  CHECK(back.services[0].options.health == health::ServiceHealth{});  // none given: the defaults
  const DumpReal& br = back.services[0].reals.at(0);
  CHECK(br.spec.addr == r.spec.addr);
  CHECK(br.spec.fwd == FwdMethod::kTunnel);
  CHECK(br.spec.weight == 3);
  CHECK(br.spec.tun == TunnelSpec{TunType::kGue, 6080, TunCsum::kRemCsum});
  CHECK(br.health() == "interval=0.5,port=8080");
  CHECK(br.spec.u_threshold == 100);
  CHECK(br.spec.l_threshold == 50);
  CHECK(br.active == 7);
  CHECK(br.persist_conns == 2);
  CHECK(br.flags == DumpReal::kDown);
  const ServiceOptions& o = back.services[1].options;
  CHECK(o.scheduler == "rr");
  CHECK(o.persistent == 120);
  CHECK(o.netmask == test::ip("255.255.255.0"));
  CHECK(o.ops);
  CHECK(o.sched_flags == kSchedFlag1);
  CHECK(o.health == checked.options.health);  // the password too: lbadm redacts, not the dump
  CHECK(o.health.sorry_fwd == FwdMethod::kMasq);
  CHECK(back.services[1].reals.at(0).health().empty());
}

TEST_CASE("a dump with an unknown forwarding method or a bad --health is refused") {
  const std::string head = "V 4096 900 120 300\n";
  const std::string svc = "S 6 198.18.0.100 80 wlc 0 0 0 0 0 - 0 255.255.255.255 0 0 0 0 0 0 0\n";
  Dump d;
  CHECK(decode_dump(head + svc + "END\n", d));
  Dump bad_fwd;
  CHECK_FALSE(decode_dump(head + svc + "R 198.18.0.11 80 3 1 0 0 0 0 0 0 0 0 - 0 0 0 0 0 0 0 0\nEND\n", bad_fwd));
  // An older lbd's real line ends before the tunnel: IPIP. A tunnel lbd does not know: refused.
  Dump old_real;
  REQUIRE(decode_dump(head + svc + "R 198.18.0.11 80 2 1 0 0 0 0 0 0 0 0 - 0 0 0 0 0 0 0 0\nEND\n", old_real));
  CHECK(old_real.services.at(0).reals.at(0).spec.tun == TunnelSpec{});
  Dump bad_tun;
  CHECK_FALSE(decode_dump(head + svc + "R 198.18.0.11 80 2 1 0 0 0 0 0 0 0 0 - 0 0 0 0 0 0 0 0 3 0 0\nEND\n", bad_tun));
  Dump bad_health;
  CHECK_FALSE(decode_dump(head + "S 6 198.18.0.100 80 wlc 0 0 0 0 0 check=nope 0 255.255.255.255 0 0 0 0 0 0 0\n"
                                 "END\n",
                          bad_health));
}

TEST_CASE("control framing: a request line, a RESTORE block, OK/ERR replies, text closed by END") {
  CHECK_FALSE(framed_request("-A\t-t"));  // no newline yet
  CHECK(framed_request("DUMP\nextra") == "DUMP");
  const std::string block = restore_request("-A -t 198.18.0.100:80 -s rr\n-C\n");
  CHECK(block == "RESTORE\n-A -t 198.18.0.100:80 -s rr\n-C\nEND\n");
  CHECK_FALSE(framed_request(block.substr(0, block.size() - 2)));  // "END" not whole yet
  CHECK(framed_request(block) == block);
  CHECK(restore_rules(block) == "-A -t 198.18.0.100:80 -s rr\n-C\n");
  CHECK(restore_rules("DUMP\n").empty());
  CHECK(status_reply(Status::ok()) == "OK\n");
  const std::string refused = status_reply(Status::error(EEXIST, "Service already exists"));
  CHECK(refused == "ERR 17 Service already exists\n");
  const auto back = reply_status(refused);
  REQUIRE(back);
  CHECK(back->code() == EEXIST);
  CHECK(back->message() == "Service already exists");
  CHECK(reply_status("OK\n")->is_ok());
  CHECK_FALSE(reply_status("V 4096 900 120 300\n"));  // a dump is no status
  CHECK_FALSE(reply_status("ERR x y\n"));
  CHECK(reply_text("a 1\nb 2\nEND\n") == "a 1\nb 2\n");
}
