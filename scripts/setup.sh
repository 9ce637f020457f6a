#!/usr/bin/env bash
# Installs the Debian packages Gatehouse needs to build, test, fuzz and benchmark.
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
set -euo pipefail

PACKAGES=(
  build-essential gcc make pkg-config
  libyaml-dev libssl-dev libnghttp2-dev
  zlib1g-dev libbrotli-dev libzstd-dev
  clang libclang-rt-14-dev llvm clang-tidy cppcheck
  python3 python3-pytest python3-requests python3-h2 python3-hpack python3-websockets
  python3-brotli python3-zstandard
  curl nginx-light haproxy wrk nghttp2-client testssl.sh
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: missing packages (${missing[*]}) and not root: install them as root" >&2
    exit 1
  fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# nginx-light and haproxy are for the benchmarks only: keep their system services stopped.
for svc in nginx haproxy; do
  if [[ " ${missing[*]} " == *" ${svc}"* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
