#!/usr/bin/env bash
# Pack the three brokers of the sink tests and benchmark (mosquitto, redis-server, nats-server,
# from Debian 12's packages: tests/support/install_broker_deps.sh) into .broker-kit/ with every
# shared library down to glibc and its dynamic loader, for a host without apt (the GPU host).
# .broker-kit/bin/NAME starts the real binary through the bundled loader, so the kit needs
# nothing on the target but the kernel and /bin/sh. About 20 MB.
#
#   tests/support/pack_broker_kit.sh                 # here, from the repo root
#   PATH=$PWD/.broker-kit/bin:$PATH python benchmarks/sinks_bench.py ...   # there
set -euo pipefail

KIT=.broker-kit
BINARIES=(/usr/sbin/mosquitto /usr/bin/redis-server /usr/sbin/nats-server)
for need in "${BINARIES[@]}"; do
  [ -e "$need" ] || { echo "pack_broker_kit: $need missing; run tests/support/install_broker_deps.sh" >&2; exit 1; }
done
rm -rf "$KIT"
mkdir -p "$KIT/bin" "$KIT/real" "$KIT/lib"
for binary in "${BINARIES[@]}"; do
  name=$(basename "$binary")
  cp -L "$binary" "$KIT/real/$name"
  ldd "$binary" | awk '/=> \//{print $3} $1 ~ /^\//{print $1}' | while read -r lib; do
    cp -nL "$lib" "$KIT/lib/"
  done
  cat > "$KIT/bin/$name" <<WRAP
#!/bin/sh
kit=\$(cd "\$(dirname "\$0")/.." && pwd)
exec "\$kit/lib/ld-linux-x86-64.so.2" --library-path "\$kit/lib" "\$kit/real/$name" "\$@"
WRAP
  chmod +x "$KIT/bin/$name"
done
du -sh "$KIT"
"$KIT/bin/redis-server" --version
"$KIT/bin/nats-server" --version
"$KIT/bin/mosquitto" -h 2>&1 | head -1 || true
