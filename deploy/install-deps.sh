#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, only if any is missing.
# Sourced or run by deploy/demo.sh and deploy/test.sh.
set -euo pipefail

PACKAGES=(
  g++ cmake make pkg-config
  libpaho-mqttpp-dev libpaho-mqtt-dev
  mosquitto mosquitto-clients
  libprotobuf-dev protobuf-compiler
  libsqlite3-dev sqlite3
  libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  catch2
  libglpk-dev
  python3-scipy
  libmodbus-dev python3-pymodbus
  mosquitto-dev libssl-dev openssl clang
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing missing packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
