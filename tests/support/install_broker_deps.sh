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

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_broker_deps: all present (${PACKAGES[*]})"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install_broker_deps: missing ${missing[*]}; run as root (no sudo here)" >&2
  exit 1
fi

echo "install_broker_deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  --no-install-recommends "${missing[@]}"
# The tests start their own brokers; the packaged services would only hold the default ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for service in mosquitto redis-server nats-server; do
    "${as_root[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
  done
fi
