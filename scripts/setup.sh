#!/usr/bin/env bash
# Installs everything xseq needs on Debian 12, idempotently: apt packages,
# npm dependencies, the BPF filesystem, and the BPF/C builds. Both README
# commands run it first; it does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "[setup] must run as root (apt, BPF and network namespaces need it)" >&2
  exit 1
fi

# clang/llvm build the BPF objects; libbpf1 is what the agent binds through
# koffi; bpftool and iproute2 inspect and attach; nftables injects loss in
# tests (this kernel has no netem); prometheus brings promtool; tshark runs the
# Wireshark dissector (tools/wireshark) in its test.
APT_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev gcc-multilib gcc make ethtool
  iproute2 nftables iputils-ping util-linux procps ca-certificates prometheus ruby systemd tshark)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt packages present"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "[setup] Node.js $(node --version) is too old: xseq needs Node.js 20 or newer (vitest and koffi)." >&2
  echo "[setup] Install Node.js 20+ (e.g. Debian's nodejs from bookworm-backports or your distribution's Node 20 package) and run again." >&2
  exit 1
fi

# The BPF filesystem holds pins; most systems mount it, a bare VM may not.
if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

# npm ci only when the lock changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.package-lock.json
else
  log "node_modules up to date"
fi

log "building BPF objects and C tools"
make -s -C bpf
make -s -C bench
log "ready"
