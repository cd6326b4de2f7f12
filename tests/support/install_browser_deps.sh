#!/usr/bin/env bash
# Install the headless browser the web view's browser test drives (tests/streams/web), from
# Debian/Ubuntu packages. Idempotent: installs only what is missing, runs `apt-get update` only
# then, and does nothing (no root needed) when everything is there. Root, or sudo otherwise.
#
#   chromium        the browser (run headless through the DevTools protocol)
#   fonts-dejavu-core  a font for the page's text (a bare image may have none)
set -euo pipefail

PACKAGES=(
  chromium
  fonts-dejavu-core
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_browser_deps: all present (${PACKAGES[*]})"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install_browser_deps: missing ${missing[*]}; run as root (no sudo here)" >&2
  exit 1
fi

echo "install_browser_deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  --no-install-recommends "${missing[@]}"
