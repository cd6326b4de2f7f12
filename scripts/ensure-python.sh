#!/usr/bin/env bash
# Make sure `python3 -m venv` works (fresh Debian/Ubuntu images lack python3-venv).
# Installs only what is missing; uses sudo when not root.
set -euo pipefail
python=${1:-python3}
if ! command -v "$python" >/dev/null; then missing=python3; fi
if [ -z "${missing:-}" ] && "$python" -c 'import venv, ensurepip' 2>/dev/null; then exit 0; fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing python3, python3-venv and python3-pip with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
