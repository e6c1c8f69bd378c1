#!/usr/bin/env bash
# Installs the Debian 12 packages this project needs to build, test and run.
# Idempotent: does nothing when they are all present. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git clang libclang-rt-14-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpqxx-dev libpq-dev libabsl-dev
  libgtest-dev libgmock-dev
  libspdlog-dev libcli11-dev nlohmann-json3-dev libcivetweb-dev
  libgoogle-perftools-dev
  postgresql-15 postgresql-client-15 openssl patroni etcd-server
  python3 python3-grpcio python3-protobuf python3-grpc-tools
  docker.io docker-compose debootstrap iptables
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "Installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
