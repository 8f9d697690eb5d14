// The last step of a frame the data path decided to send: queued on the out interface's
// injector as it is, or cut first as its verdict says (TCP super-frames into segments,
// each wrapped in IPIP for a tunnel; IPv4 packets without DF into fragments).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "lb/io/capture.hpp"
#include "lb/core/data_path.hpp"

namespace lbd {

// `in_place`: the frame lies in out's next buffer already (processed where it is sent
// from). `scratch` holds a frame being cut (at least 65536 + 64 bytes).
void transmit(Injector& out, const uint8_t* frame, size_t len, const Verdict& v, bool in_place,
              std::span<uint8_t> scratch);

}  // namespace lbd
