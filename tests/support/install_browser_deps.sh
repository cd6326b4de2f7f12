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

# shellcheck source=tests/support/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install install_browser_deps "${PACKAGES[@]}"
