#!/usr/bin/env bash
# Drives the dashboard in headless Chromium (Debian's `chromium`, through Playwright for Python)
# against real asbru gateways; page screenshots land in target/ui-screenshots/.
# Usage: tests/ui/run.sh [path/to/asbru]   (default: target/debug/asbru, built if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(realpath "${1:-$root/target/debug/asbru}")"
[ $# -gt 0 ] && shift
[ -x "$bin" ] || (cd "$root" && cargo build --quiet --bin asbru)

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "tests/ui: $chromium not found; install Debian's chromium package (apt-get install chromium)" >&2
  exit 1
fi

venv="$root/target/ui-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check playwright pytest

rm -rf "$root/target/ui-screenshots"
cd "$root/tests/ui"
ASBRU_BIN="$bin" CHROMIUM="$chromium" SCREENSHOTS="$root/target/ui-screenshots" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
