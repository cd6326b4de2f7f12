#!/usr/bin/env bash
# Install the message brokers that the sink tests (tests/streams/sinks/) start on loopback, from
# Debian/Ubuntu packages. Idempotent: installs only what is missing, runs `apt-get update` only
# then, and does nothing (no root needed) when everything is there. Root, or sudo otherwise.
# The packages' own services are not needed: each test starts its own broker on a free port
# (tests/support/brokers.py), so the ones apt may start are stopped and disabled here.
#
#   mosquitto      MQTT broker (tests/streams/sinks/test_mqtt.py); mosquitto_passwd for the
#                  wrong-credentials test
#   redis-server   Redis Streams (test_redis.py)
#   nats-server    NATS with JetStream, -js (test_nats.py)
set -euo pipefail

PACKAGES=(mosquitto redis-server nats-server)

# shellcheck source=tests/support/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install install_broker_deps "${PACKAGES[@]}"
# The tests start their own brokers; the packaged services would only hold the default ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for service in mosquitto redis-server nats-server; do
    "${as_root[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
  done
fi
