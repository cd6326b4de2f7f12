#!/usr/bin/env bash
# Install what the RTSP test server (tests/support/rtsp_server.py) and the test clips need, from
# Debian/Ubuntu packages. Idempotent: installs only what is missing, runs `apt-get update` only
# then, and does nothing (no root needed) when everything is there. Root, or sudo otherwise.
#
#   python3-gi                   gi for the SYSTEM /usr/bin/python3 (not pip-installable here)
#   gir1.2-gst-rtsp-server-1.0   GstRtspServer (pulls libgstrtspserver and the Gst typelibs)
#   gstreamer1.0-plugins-base    appsrc, appsink
#   gstreamer1.0-plugins-good   qtdemux, rtph264pay, rtpbin, udp
#   gstreamer1.0-plugins-bad     h264parse
#   ffmpeg                       make_test_clip() (libx264 re-encode)
#   systemd                      systemd-analyze verify deploy/streams.service (tests/test_service.py)
set -euo pipefail

PACKAGES=(
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  ffmpeg
  systemd
)

# shellcheck source=tests/support/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install install_rtsp_deps "${PACKAGES[@]}"
