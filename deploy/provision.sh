#!/usr/bin/env bash
# Provisions a Debian 12 host for one xseq role from a checkout of this repo:
# apt packages and Node.js 20, a copy of the repo in /opt/xseq with its npm
# dependencies, the BPF build, the role's systemd units and config, enabled.
# Idempotent: a second run changes nothing and restarts nothing unless the
# checkout or a config changed. The Vagrantfile runs it on every VM.
#
#   deploy/provision.sh --role sequencer [--agent-config FILE] [--with-prometheus]
#   deploy/provision.sh --role replica --replica-id N [--kv-config FILE]
#   deploy/provision.sh --role client
#
# --root DIR       install into DIR as if it were / (an image, or a test):
#                  no apt, no mounts, no daemons; units are enabled with
#                  `systemctl --root DIR` (offline) unless --no-systemctl.
# --no-systemctl   never run systemctl (hosts or containers without systemd).
# --offline        no network: no apt-get, no npm ci; node_modules is taken
#                  from the checkout, which must have been installed on this
#                  machine (scripts/setup.sh) for this package-lock.json.
# --prefix DIR     where the code goes (default /opt/xseq; the units name it).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROLE=
REPLICA_ID=
AGENT_CONFIG=
KV_CONFIG=
ROOT=
PREFIX=/opt/xseq
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
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
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
[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path"
for f in "$AGENT_CONFIG" "$KV_CONFIG"; do
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
DEST=$ROOT$PREFIX
CHANGED=0

# ---------------------------------------------------------------------------
# Packages. The sequencer builds and loads BPF (clang, libbpf, bpftool);
# every role runs Node.js 20+ (Debian 12 has 18, so it comes from NodeSource).

SEQUENCER_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev gcc-multilib gcc make iproute2 ethtool)
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
    node_ok || die "Node.js 20 or newer is needed to install the npm dependencies"
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

# install_symlink TARGET LINK
install_symlink() {
  local target=$1 link=$2
  [ "$(readlink "$link" 2>/dev/null || true)" != "$target" ] || return 0
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link"
  log "linked ${link#"$ROOT"} -> $target"
  CHANGED=$((CHANGED + 1))
}

# A digest of the installed code (not node_modules or builds), to tell
# whether a copy brought anything new.
tree_digest() {
  [ -d "$DEST" ] || { echo none; return; }
  (cd "$DEST" && find . \( -path ./node_modules -o -path ./bpf/build -o -path ./bench/build \) -prune -o -type f -print0 |
    LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
}

install_code() {
  if [ "$SRC" = "$DEST" ]; then
    log "code already at $PREFIX"
    return
  fi
  local before after
  before=$(tree_digest)
  mkdir -p "$DEST"
  # tar keeps modification times, so make sees an unchanged source as built.
  tar -C "$SRC" --exclude=./.git --exclude=./node_modules --exclude=./bpf/build --exclude=./bench/build \
    --exclude=./.vagrant --exclude='*.log' -cf - . | tar -C "$DEST" --no-same-owner -xf -
  after=$(tree_digest)
  if [ "$before" != "$after" ]; then
    log "code copied to $PREFIX"
    CHANGED=$((CHANGED + 1))
  else
    log "code at $PREFIX up to date"
  fi
}

# node_modules is current when npm's own record of the install is newer
# than the lock file (the rule scripts/setup.sh uses).
modules_current() { [ -f "$1/node_modules/.package-lock.json" ] && [ ! "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; }

install_modules() {
  if modules_current "$DEST"; then
    log "node_modules up to date"
    return
  fi
  if [ "$OFFLINE" -eq 1 ]; then
    modules_current "$SRC" || die "--offline: $SRC/node_modules is missing or older than package-lock.json; run scripts/setup.sh there first"
    log "copying node_modules from $SRC (--offline)"
    rm -rf "$DEST/node_modules"
    mkdir -p "$DEST/node_modules"
    # "/.": the contents, also when the checkout's node_modules is a symlink.
    cp -a "$SRC/node_modules/." "$DEST/node_modules/"
  else
    log "npm ci --omit=dev in $PREFIX"
    (cd "$DEST" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  fi
  touch "$DEST/node_modules/.package-lock.json"
  CHANGED=$((CHANGED + 1))
}

build_bpf() {
  local out
  out=$(make -C "$DEST/bpf" 2>&1) || { printf '%s\n' "$out" >&2; die "make -C $PREFIX/bpf failed"; }
  if grep -q clang <<<"$out"; then
    log "built the BPF objects"
    CHANGED=$((CHANGED + 1))
  else
    log "BPF objects up to date"
  fi
}

# ---------------------------------------------------------------------------

UNITS=()
install_role() {
  local units="$SRC/deploy/systemd" sys="$ROOT/etc/systemd/system" etc="$ROOT/etc/xseq"
  mkdir -p "$etc"
  case "$ROLE" in
    sequencer)
      install_file "$units/xseq-agent.service" "$sys/xseq-agent.service" 0644
      install_symlink "$PREFIX/agent/bin/xseq-agent.js" "$ROOT/usr/local/bin/xseq-agent"
      if [ -n "$AGENT_CONFIG" ]; then
        install_file "$AGENT_CONFIG" "$etc/agent.yaml" 0644
      elif [ ! -e "$etc/agent.yaml" ]; then
        # A starting point only: its interface and members must be edited.
        install_file "$SRC/deploy/agent.example.yaml" "$etc/agent.yaml" 0644
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
      install_file "$units/xseq-replica@.service" "$sys/xseq-replica@.service" 0644
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
install_code
install_modules
[ "$ROLE" != sequencer ] || build_bpf
install_role
enable_units
log "done: role $ROLE${REPLICA_ID:+ $REPLICA_ID}, $CHANGED change(s)"
