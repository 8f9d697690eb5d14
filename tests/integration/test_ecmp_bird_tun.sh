#!/usr/bin/env bash
# test_ecmp_bird with TUN reals (lbd-decap on each, accepting the three directors): the
# same checks, the directors tunnelling instead of rewriting the MAC.
ECMP_METHOD=tun exec bash "$(dirname "$0")/test_ecmp_bird.sh"
