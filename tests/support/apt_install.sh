# Sourced by tests/support/install_*_deps.sh: `apt_install NAME PACKAGE...` installs the
# packages that are missing, from Debian/Ubuntu's archive (apt-get update only then), as root or
# through sudo; with everything there it says so and exits the calling script (no root needed).
# Sets `as_root` (the prefix for root commands) for what the caller does after installing.
apt_install() {
  local name=$1 pkg
  shift
  local missing=()
  for pkg in "$@"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$name: all present ($*)"
    exit 0
  fi
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "$name: missing ${missing[*]}; run as root (no sudo here)" >&2
    exit 1
  fi
  echo "$name: installing ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
}
