#!/usr/bin/env bash
# Sets everything up and runs every test: installs the dependencies (Debian 12, as root),
# builds, and runs the unit and integration tests through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (integration tests make network namespaces)" >&2; exit 1; }
. scripts/deps.sh
lbd_install_deps
lbd_build
cd build
ctest --output-on-failure --timeout 300 "$@"
