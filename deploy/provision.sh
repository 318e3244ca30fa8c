#!/usr/bin/env bash
# Provisions a Debian 12 host for one xseq role from a checkout of this repo:
# apt packages and Node.js 20, the xseq Debian package (scripts/package-deb.sh:
# compiled JavaScript, BPF objects and units under /opt/xseq, /usr/bin and
# /lib/systemd/system; no tsx and no npm at run time), the role's config,
# its unit enabled. Idempotent: a second run changes nothing and restarts
# nothing unless the package or a config changed. The Vagrantfile runs it on
# every VM.
#
#   deploy/provision.sh --role sequencer [--agent-config FILE] [--with-prometheus]
#   deploy/provision.sh --role replica --replica-id N [--kv-config FILE]
#   deploy/provision.sh --role client
#
# --deb FILE       the package to install. Default: dist/xseq_<version>_<arch>.deb
#                  of the checkout, built by scripts/package-deb.sh first when
#                  missing (that needs the checkout's node_modules and clang).
# --root DIR       install into DIR as if it were / (an image, or a test):
#                  the package is extracted (dpkg-deb -x, no maintainer
#                  scripts), no apt, no mounts, no daemons; units are enabled
#                  with `systemctl --root DIR` (offline) unless --no-systemctl.
# --no-systemctl   never run systemctl (hosts or containers without systemd).
# --offline        no network: no apt-get (dpkg -i, so the package's
#                  dependencies must be installed already).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROLE=
REPLICA_ID=
AGENT_CONFIG=
KV_CONFIG=
ROOT=
DEB=
SYSTEMCTL=1
OFFLINE=0
PROMETHEUS=0

log() { printf '[provision] %s\n' "$*"; }
die() { printf '[provision] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --role) ROLE=${2:?--role needs a value}; shift 2 ;;
    --replica-id) REPLICA_ID=${2:?--replica-id needs a value}; shift 2 ;;
    --agent-config) AGENT_CONFIG=${2:?--agent-config needs a file}; shift 2 ;;
    --kv-config) KV_CONFIG=${2:?--kv-config needs a file}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --deb) DEB=${2:?--deb needs a file}; shift 2 ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    --offline) OFFLINE=1; shift ;;
    --with-prometheus) PROMETHEUS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument \"$1\"" ;;
  esac
done

case "$ROLE" in
  sequencer|client) ;;
  replica) [[ "$REPLICA_ID" =~ ^[0-7]$ ]] || die "--role replica needs --replica-id 0..7 (got \"$REPLICA_ID\")" ;;
  '') die "--role is required: sequencer, replica or client" ;;
  *) die "--role \"$ROLE\" is not sequencer, replica or client" ;;
esac
for f in "$AGENT_CONFIG" "$KV_CONFIG" "$DEB"; do
  [ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=
fi
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root (or with --root DIR to stage an install)"
fi
CHANGED=0

# ---------------------------------------------------------------------------
# Packages. The sequencer loads BPF (the objects come built in the xseq
# package; libbpf1 is its dependency); every role runs Node.js 20+ (Debian
# 12 has 18, so it comes from NodeSource).

SEQUENCER_PACKAGES=(libbpf1 bpftool iproute2 ethtool)
COMMON_PACKAGES=(ca-certificates curl gnupg iproute2 procps)

node_ok() { command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; }

install_packages() {
  local want=("${COMMON_PACKAGES[@]}") missing=() p
  [ "$ROLE" != sequencer ] || want+=("${SEQUENCER_PACKAGES[@]}")
  [ "$PROMETHEUS" -eq 0 ] || want+=(prometheus)
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ -n "$ROOT" ] || [ "$OFFLINE" -eq 1 ]; then
    [ "${#missing[@]}" -eq 0 ] || log "not installing packages (${ROOT:+--root}${ROOT:+ }$([ "$OFFLINE" -eq 1 ] && echo --offline)): missing here: ${missing[*]}"
    [ -n "$ROOT" ] || node_ok || die "Node.js 20 or newer is needed (the xseq package depends on nodejs >= 20)"
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! node_ok; then
    # NodeSource's documented repository setup for Node.js 20.
    log "installing Node.js 20 from deb.nodesource.com"
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" >/etc/apt/sources.list.d/nodesource.list
    apt-get update -qq
    apt-get install -y -qq nodejs >/dev/null
    node_ok || die "Node.js $(node --version 2>/dev/null || echo missing) after installing nodejs: need 20 or newer"
  fi
}

# ---------------------------------------------------------------------------
# Files. Each install reports whether it changed anything, so a re-run with
# nothing new restarts nothing.

# install_file SRC DEST MODE: copies when the content differs.
install_file() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    return
  fi
  install -D -m "$mode" "$src" "$dst"
  log "installed ${dst#"$ROOT"}"
  CHANGED=$((CHANGED + 1))
}

# The package: --deb, or the checkout's dist/ one, built when missing.
find_package() {
  [ -z "$DEB" ] || return 0
  local version arch
  version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$SRC/package.json")
  arch=$(dpkg --print-architecture)
  DEB=$SRC/dist/xseq_${version}_${arch}.deb
  [ ! -f "$DEB" ] || return 0
  # The build needs the dev dependencies (tsc); provision.sh never runs npm.
  if [ ! -x "$SRC/node_modules/.bin/tsc" ]; then
    [ "$OFFLINE" -eq 0 ] || die "--offline: $SRC/node_modules is missing (no tsc to build the package): run scripts/setup.sh there first, or pass --deb FILE"
    die "no ${DEB#"$SRC/"} and no node_modules to build it: run bash scripts/package-deb.sh in the checkout (on the host for Vagrant), or pass --deb FILE"
  fi
  log "building ${DEB#"$SRC/"} (scripts/package-deb.sh)"
  bash "$SRC/scripts/package-deb.sh" --out "$SRC/dist" >/dev/null
  [ -f "$DEB" ] || die "scripts/package-deb.sh did not make $DEB"
}

# Installs the package unless this very file was the last one installed
# (its SHA-256 is kept in /var/lib/xseq), so a re-run touches nothing.
install_package() {
  local mark="$ROOT/var/lib/xseq/provisioned-package.sha256" sum
  sum=$(sha256sum "$DEB" | cut -d' ' -f1)
  if [ -f "$mark" ] && [ "$(cat "$mark")" = "$sum" ]; then
    log "package $(basename "$DEB") already installed"
    return
  fi
  if [ -n "$ROOT" ]; then
    dpkg-deb -x "$DEB" "$ROOT"
  elif [ "$OFFLINE" -eq 1 ]; then
    dpkg -i "$DEB" >/dev/null
  else
    apt-get install -y -qq --no-install-recommends "$DEB" >/dev/null
  fi
  mkdir -p "$(dirname "$mark")"
  echo "$sum" >"$mark"
  log "installed $(basename "$DEB")"
  CHANGED=$((CHANGED + 1))
}

# ---------------------------------------------------------------------------

UNITS=()
install_role() {
  # The units come in the package (/lib/systemd/system); the configs are
  # the role's.
  local etc="$ROOT/etc/xseq"
  mkdir -p "$etc"
  case "$ROLE" in
    sequencer)
      if [ -n "$AGENT_CONFIG" ]; then
        install_file "$AGENT_CONFIG" "$etc/agent.yaml" 0644
      else
        # The package's conffile is the example: its interface and members
        # must be edited.
        log "edit /etc/xseq/agent.yaml (interface, groups) before the agent can start"
      fi
      UNITS=(xseq-agent.service)
      if [ "$PROMETHEUS" -eq 1 ]; then
        install_file "$SRC/deploy/prometheus/prometheus.yml" "$ROOT/etc/prometheus/prometheus.yml" 0644
        install_file "$SRC/deploy/prometheus/alerts.yml" "$ROOT/etc/prometheus/alerts.yml" 0644
        UNITS+=(prometheus.service)
      fi
      ;;
    replica)
      if [ -n "$KV_CONFIG" ]; then
        local tmp
        tmp=$(mktemp)
        sed "s/@REPLICA_ID@/$REPLICA_ID/g" "$KV_CONFIG" >"$tmp"
        install_file "$tmp" "$etc/kv-$REPLICA_ID.yaml" 0644
        rm -f "$tmp"
      fi
      UNITS=("xseq-replica@$REPLICA_ID.service")
      ;;
    client) ;;
  esac
}

enable_units() {
  [ "${#UNITS[@]}" -gt 0 ] || return 0
  if [ "$SYSTEMCTL" -eq 0 ]; then
    log "not enabling ${UNITS[*]} (--no-systemctl)"
    return
  fi
  if [ -n "$ROOT" ]; then
    # Offline: only the [Install] symlinks inside the root, no daemon. A
    # packaged unit (prometheus) exists there only if the image has the
    # package.
    local u file enable=()
    for u in "${UNITS[@]}"; do
      file=${u/@*./@.}
      if [ -e "$ROOT/etc/systemd/system/$file" ] || [ -e "$ROOT/lib/systemd/system/$file" ] || [ -e "$ROOT/usr/lib/systemd/system/$file" ]; then
        enable+=("$u")
      else
        log "not enabling $u: it is not installed in $ROOT"
      fi
    done
    [ "${#enable[@]}" -eq 0 ] || systemctl --root="$ROOT" --quiet enable "${enable[@]}"
    [ "${#enable[@]}" -eq 0 ] || log "enabled ${enable[*]} in $ROOT"
    return
  fi
  systemctl daemon-reload
  local u
  for u in "${UNITS[@]}"; do
    systemctl enable --quiet "$u"
    if ! systemctl is-active --quiet "$u"; then
      systemctl start "$u" || log "warning: $u did not start; see: journalctl -u $u"
    elif [ "$CHANGED" -gt 0 ]; then
      # New code or config; the agent re-adopts its pinned data path.
      systemctl restart "$u"
      log "restarted $u"
    fi
  done
}

install_packages
if [ -z "$ROOT" ] && [ "$ROLE" = sequencer ] && ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
  log "mounted bpffs on /sys/fs/bpf"
fi
find_package
install_package
install_role
enable_units
log "done: role $ROLE${REPLICA_ID:+ $REPLICA_ID}, $CHANGED change(s)"
