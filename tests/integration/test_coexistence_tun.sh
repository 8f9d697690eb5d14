#!/usr/bin/env bash
# The kernel-coexistence matrix of test_coexistence.sh, for TUN real servers.
COEX_METHOD=tun exec bash "$(dirname "$0")/test_coexistence.sh"
