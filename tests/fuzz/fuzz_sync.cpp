// The sync daemon's input: any datagram decoded (sync_message.hpp) and what it yields
// applied to a backup's data path. Invariants: a refused message yields no record; a
// record taken encodes and decodes back to itself; applying never breaks the table.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "lb/core/data_path.hpp"
#include "lb/core/sync_message.hpp"

using namespace lbd;

namespace {
struct Backup {
  ServiceTable services;
  ConnTable conns{1024, 7};
  Timeouts timeouts;
  DataPath dp{services, conns, timeouts};
  Backup() {
    const ServiceKey key{kProtoTcp, Be32::from_host(0xc6120064u), 80};
    ServiceOptions o{"rr"};
    o.persistent = 300;
    if (!services.add_service(key, o).is_ok()) std::abort();
    for (uint32_t i = 1; i <= 2; ++i)
      if (!services.add_real(key, RealSpec{Be32::from_host(0xc612000au + i), 80, FwdMethod::kMasq, 1}).is_ok())
        std::abort();
    if (!services.add_service({kProtoUdp, Be32::from_host(0xc6120064u), 0}, ServiceOptions{"rr"}).is_ok())
      std::abort();
    if (!services.add_real({kProtoUdp, Be32::from_host(0xc6120064u), 0},
                           RealSpec{Be32::from_host(0xc612000bu), 0, FwdMethod::kRoute, 1}).is_ok())
      std::abort();
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Backup b;
  const uint8_t syncid = size ? data[0] % 3 : 0;
  const sync::Decoded d = sync::decode({data, size}, syncid);
  if (d.refusal != sync::Refusal::kNone && !d.records.empty()) std::abort();
  for (const sync::Record& r : d.records) {
    sync::MessageBuilder m(0, 1472);
    if (!m.add(r)) std::abort();
    const sync::Decoded again = sync::decode(m.bytes(), 0);
    if (again.records.size() != 1 || !(again.records[0] == r)) std::abort();
    b.dp.apply_sync(r, 1000);
  }
  if (b.conns.size() > b.conns.capacity()) std::abort();
  b.dp.expire(10'000'000, 1 << 20);  // everything synced expires cleanly
  return 0;
}
