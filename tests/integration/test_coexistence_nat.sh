#!/usr/bin/env bash
# The kernel-coexistence matrix of test_coexistence.sh, for NAT real servers.
COEX_METHOD=nat exec bash "$(dirname "$0")/test_coexistence.sh"
