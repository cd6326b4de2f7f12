#!/usr/bin/env bash
# Pack the RTSP test server (tests/support/rtsp_server.py) into .rtsp-kit/: Debian's python3.11,
# gi, GStreamer, gst-rtsp-server and the few plugins the server uses, with every shared library
# down to glibc and its dynamic loader. `.rtsp-kit/run SCRIPT [ARGS...]` starts the bundled
# python through the bundled loader, so the bundle needs nothing on the target but the kernel
# (and /bin/sh for the launcher): no GStreamer, no python3-gi, any glibc.
#
#   tests/support/pack_rtsp_server.sh            # from the repo root, on Debian 12 with
#                                                # tests/support/install_rtsp_deps.sh done
#   tar -C .rtsp-kit -cf - . | ...               # unpack anywhere, e.g. /tmp/rtsp-kit
#   STREAMS_RTSP_PYTHON=/tmp/rtsp-kit/run pytest tests/test_rtsp_support.py
set -euo pipefail

KIT=.rtsp-kit
PY=/usr/bin/python3.11
ARCH_LIB=/usr/lib/x86_64-linux-gnu
STDLIB=/usr/lib/python3.11
GI=/usr/lib/python3/dist-packages/gi
# What the server loads at run time (checked in /proc/PID/maps with TCP and UDP clients):
# filesrc/queue (coreelements), qtdemux (isomp4), h264parse (videoparsersbad), appsrc/appsink
# (app), rtph264pay (rtp), rtpbin/rtpsession (rtpmanager), udpsrc/multiudpsink (udp).
PLUGINS=(coreelements isomp4 videoparsersbad app rtp rtpmanager udp)
# Typelibs: these namespaces and everything they depend on (resolved below by gi itself).
NAMESPACES=(Gst GstRtspServer GstApp)
# lib-dynload modules left out: tests, and the ones that would pull big libraries nobody here
# needs (OpenSSL, SQLite, ncurses, readline, Berkeley DB, Kerberos for nis).
DYNLOAD_SKIP='^(_test|_ctypes_test|_xxtestfuzz|xxlimited|_ssl|_hashlib|_sqlite3|_curses|readline|_dbm|_gdbm|nis|_crypt)'

for need in "$PY" "$GI" "$ARCH_LIB/libgstrtspserver-1.0.so.0"; do
  [ -e "$need" ] || { echo "pack_rtsp_server: $need missing; run tests/support/install_rtsp_deps.sh" >&2; exit 1; }
done
[ -f tests/support/rtsp_server.py ] || { echo "pack_rtsp_server: run from the repo root" >&2; exit 1; }

rm -rf "$KIT"
mkdir -p "$KIT/bin" "$KIT/lib/gstreamer-1.0" "$KIT/lib/girepository-1.0" "$KIT/lib/gio-modules" \
  "$KIT/site-packages"

# --- Python: the binary (libpython is linked in statically on Debian), a pruned stdlib, gi.
cp -L "$PY" "$KIT/bin/python3.11"
# tar -h resolves symlinks (_sysconfigdata alias). Left out: tests, GUIs, build config (25 MB of
# libpython.a), packages whose C part is not bundled, and sitecustomize (Debian's apport hook).
tar -C "$(dirname "$STDLIB")" -chf - \
  --exclude=__pycache__ --exclude='*.pyc' --exclude=test --exclude=tests \
  --exclude=idlelib --exclude=tkinter --exclude=turtledemo --exclude=turtle.py \
  --exclude=ensurepip --exclude=lib2to3 --exclude=pydoc_data --exclude=distutils \
  --exclude='config-3.11-*' --exclude=sqlite3 --exclude=curses \
  --exclude=sitecustomize.py --exclude=lib-dynload \
  "$(basename "$STDLIB")" | tar -C "$KIT/lib" -xf -
mkdir -p "$KIT/lib/python3.11/lib-dynload"
for so in "$STDLIB"/lib-dynload/*.so; do
  name=$(basename "$so")
  [[ $name =~ $DYNLOAD_SKIP ]] || cp -L "$so" "$KIT/lib/python3.11/lib-dynload/"
done
# gi without the GTK/cairo parts (the server and the probe need neither).
tar -C "$(dirname "$GI")" -chf - --exclude=__pycache__ --exclude='_gi_cairo*' \
  --exclude=pygtkcompat.py --exclude='overrides/Gtk.py' --exclude='overrides/Gdk*.py' \
  --exclude='overrides/Pango.py' --exclude='overrides/keysyms.py' gi | tar -C "$KIT/site-packages" -xf -
cp tests/support/rtsp_server.py "$KIT/rtsp_server.py"  # so the bundle runs without the repo

# --- GStreamer plugins and typelibs (the typelibs name the libraries that gi dlopens).
for p in "${PLUGINS[@]}"; do
  cp -L "$ARCH_LIB/gstreamer-1.0/libgst$p.so" "$KIT/lib/gstreamer-1.0/"
done
# gi itself says which typelibs the namespaces pull in and which libraries each one dlopens
# (a command substitution, so that a failure here stops the script).
typelibs=$(GI_TYPELIB_PATH= "$PY" - "${NAMESPACES[@]}" <<'EOF'
import sys
import gi
gi.require_version("GIRepository", "2.0")
from gi.repository import GIRepository
for ns in sys.argv[1:]:
    gi.require_version(ns, "1.0")
    __import__("gi.repository." + ns)
repo = GIRepository.Repository.get_default()
for ns in repo.get_loaded_namespaces():
    if ns != "GIRepository":  # only used here
        print(repo.get_typelib_path(ns), repo.get_shared_library(ns) or "", sep="\t")
EOF
)
dlopened=()
while IFS= read -r line; do
  cp -L "${line%%$'\t'*}" "$KIT/lib/girepository-1.0/"
  IFS=, read -ra names <<<"${line#*$'\t'}"
  for n in "${names[@]}"; do dlopened+=("$ARCH_LIB/$n"); done
done <<<"$typelibs"

# --- Shared libraries: the ldd closure of everything above, under its soname, plus
# libgcc_s (glibc dlopens it for pthread_exit/cancel) and glibc's small helper libraries
# (in case something dlopens them; a few kB each).
roots=("$KIT/bin/python3.11" "$KIT"/lib/python3.11/lib-dynload/*.so "$KIT"/site-packages/gi/*.so
  "$KIT"/lib/gstreamer-1.0/*.so "${dlopened[@]}" "$ARCH_LIB/libgstrtspserver-1.0.so.0"
  "$ARCH_LIB/libgirepository-1.0.so.1" "$ARCH_LIB/libgcc_s.so.1" "$ARCH_LIB/libpthread.so.0"
  "$ARCH_LIB/libdl.so.2" "$ARCH_LIB/librt.so.1" "$ARCH_LIB/libresolv.so.2")
declare -A libs=()
for f in "${roots[@]}"; do
  case $f in "$KIT"/*) ;; *) libs[$(basename "$f")]=$f ;; esac  # a system library: keep it too
  out=$(ldd "$f")
  if grep -q 'not found' <<<"$out"; then echo "pack_rtsp_server: $f: $out" >&2; exit 1; fi
  while read -r name arrow path _; do
    if [ "$arrow" = "=>" ] && [ -e "$path" ]; then libs[$name]=$path
    elif [[ $name == */ld-linux-x86-64.so.2 ]]; then libs[ld-linux-x86-64.so.2]=$name
    fi
  done <<<"$out"
done
for name in "${!libs[@]}"; do cp -L "${libs[$name]}" "$KIT/lib/$name"; done
chmod 755 "$KIT/lib/ld-linux-x86-64.so.2"

# --- The launcher (POSIX sh, builtins only: it also runs in a chroot with just busybox sh).
cat >"$KIT/run" <<'EOF'
#!/bin/sh
# .rtsp-kit/run SCRIPT [ARGS...]: the bundled python3.11 with gi and GStreamer, loaded by the
# bundled glibc loader, so nothing is taken from the host (its libc, GStreamer, typelibs,
# plugins, gio modules, locales). Relocatable: everything is found from this file's directory.
case $0 in
  */*) here=${0%/*} ;;
  *) here=$(command -v -- "$0") && here=${here%/*} || here=. ;;
esac
dir=$(cd -- "$here" && pwd -P) || exit 127

export PYTHONHOME="$dir" PYTHONPATH="$dir/site-packages" PYTHONNOUSERSITE=1
# The host's locale files may belong to another glibc: use the built-in C locale, and UTF-8 I/O.
export LC_ALL=C PYTHONUTF8=1 PYTHONCOERCECLOCALE=0
unset PYTHONSTARTUP PYTHONEXECUTABLE
export GI_TYPELIB_PATH="$dir/lib/girepository-1.0"
export GST_PLUGIN_SYSTEM_PATH_1_0="$dir/lib/gstreamer-1.0" GST_PLUGIN_SYSTEM_PATH="$dir/lib/gstreamer-1.0"
export GST_PLUGIN_PATH_1_0= GST_PLUGIN_PATH=
# Scan plugins in-process (no gst-plugin-scanner binary); keep the registry in the bundle when
# it is writable (GStreamer replaces it atomically, so concurrent servers are fine).
if [ -w "$dir" ]; then reg="$dir/registry.bin"; else reg="${TMPDIR:-/tmp}/rtsp-kit-registry.bin"; fi
export GST_REGISTRY_1_0="$reg" GST_REGISTRY="$reg" GST_REGISTRY_FORK=no
unset GST_PLUGIN_SCANNER GST_PLUGIN_SCANNER_1_0
export GIO_MODULE_DIR="$dir/lib/gio-modules"  # empty: never load the host's gio modules
unset GIO_EXTRA_MODULES LD_PRELOAD
export LD_LIBRARY_PATH="$dir/lib"
exec "$dir/lib/ld-linux-x86-64.so.2" --inhibit-cache --library-path "$dir/lib" \
  "$dir/bin/python3.11" "$@"
EOF
chmod 755 "$KIT/run"

# --- Smoke test through the launcher: the probe's elements load, and every library and typelib
# in use comes from the bundle (not from this host). Then drop what the run left behind.
"$KIT/run" - <<'EOF'
import os, sys
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
for e in ("filesrc", "qtdemux", "h264parse", "appsrc", "appsink", "rtph264pay", "rtpbin", "udpsrc"):
    assert Gst.ElementFactory.make(e), f"no element {e}"
GstRtspServer.RTSPServer().get_mount_points().add_factory("/x", GstRtspServer.RTSPMediaFactory())
kit = os.path.realpath(sys.prefix) + "/"
repo = gi.Repository.get_default()
used = [repo.get_typelib_path(ns) for ns in repo.get_loaded_namespaces()]
used += [line.split()[-1] for line in open("/proc/self/maps") if ".so" in line]
foreign = sorted({p for p in used if not os.path.realpath(p).startswith(kit)})
assert not foreign, f"loaded from outside the bundle: {foreign}"
EOF
rm -f "$KIT/registry.bin"
find "$KIT" -name __pycache__ -prune -exec rm -rf {} +

echo "pack_rtsp_server: $KIT: $(ls "$KIT/lib" | grep -c '\.so') libraries," \
  "$(ls "$KIT/lib/gstreamer-1.0" | wc -l) plugins, $(ls "$KIT/lib/girepository-1.0" | wc -l) typelibs," \
  "$(find "$KIT/lib/python3.11" -name '*.py' | wc -l) stdlib modules"
du -sh "$KIT"
