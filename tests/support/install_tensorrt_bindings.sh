#!/usr/bin/env bash
# Fetch NVIDIA's TensorRT Python bindings for 10.x and 11.x from PyPI (about 1.3 MB each, the
# bindings alone: the libraries they link are not on PyPI) and build the import-only shim
# (tests/support/tensorrt_import_shim.c) that lets them import here, for
# tests/engines/test_tensorrt_versions.py: the build paths that engines/ picks on each TensorRT
# are then decided by the real bindings' enums and classes, on a machine with no GPU.
# Idempotent; needs the test venv's python (PYTHON) and a C compiler (cc).
#
#   PYTHON=.venv/bin/python bash tests/support/install_tensorrt_bindings.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
DEST=${STREAMS_TRT_BINDINGS:-${XDG_CACHE_HOME:-$HOME/.cache}/streams-tests/tensorrt-bindings}
# One per TensorRT major the engines support beyond 8.6 (8.6 is the GPU kit's; its surface is in
# tests/data/tensorrt_api/).
WHEELS=(tensorrt-cu12-bindings==10.16.1.11 tensorrt-cu13-bindings==11.4.0.106)
LIBS=(nvinfer nvonnxparser nvinfer_plugin)

if ! command -v cc >/dev/null 2>&1; then
  # shellcheck source=tests/support/apt_install.sh
  (source "$here/apt_install.sh" && apt_install install_tensorrt_bindings gcc libc6-dev)
fi
py=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
for wheel in "${WHEELS[@]}"; do
  version=${wheel#*==}
  major=${version%%.*}
  dir="$DEST/$version-cp$py"
  if [ -f "$dir/.ready" ]; then
    echo "install_tensorrt_bindings: $version present ($dir)"
    continue
  fi
  rm -rf "$dir" && mkdir -p "$dir/lib"
  if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$dir/wheel" "$wheel"; then
    echo "install_tensorrt_bindings: cannot fetch $wheel for this Python and platform;" \
      "tests/engines/test_tensorrt_versions.py will skip its $version checks" >&2
    continue
  fi
  "$PYTHON" -m zipfile -e "$dir"/wheel/*.whl "$dir/site"
  for lib in "${LIBS[@]}"; do
    cc -shared -fPIC -Wl,-soname,"lib$lib.so.$major" -o "$dir/lib/lib$lib.so.$major" \
      "$here/tensorrt_import_shim.c"
  done
  touch "$dir/.ready"
  echo "install_tensorrt_bindings: $version ready ($dir)"
done
