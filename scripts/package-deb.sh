#!/usr/bin/env bash
# Builds the Debian package of xseq: dist/xseq_<version>_<arch>.deb.
#
#   bash scripts/package-deb.sh [--out DIR]
#
# What it holds: the run-time code compiled to JavaScript (tsconfig.build.json:
# agent, bpf, replica, examples/kv; no tsx at run time), the BPF objects
# (make -C bpf), the production npm dependencies, under /opt/xseq;
# /usr/bin/xseq-agent; the systemd units in /lib/systemd/system (not enabled:
# edit /etc/xseq/agent.yaml first); /etc/xseq/agent.yaml (a conffile, the
# documented example); the docs in /usr/share/doc/xseq. Depends on Node.js
# 20+ (Debian's or NodeSource's nodejs package) and libbpf1.
# test/package.test.ts builds it, inspects it, runs it extracted, and
# installs and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "package-deb.sh: unknown option $1 (--out DIR)" >&2; exit 2 ;;
  esac
done
log() { printf '[package] %s\n' "$*"; }
for tool in dpkg-deb node make; do
  command -v "$tool" >/dev/null || { echo "package-deb.sh: $tool is missing" >&2; exit 1; }
done

VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
OPT="$ROOT/opt/xseq"
mkdir -p "$OPT" "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/lib/systemd/system" "$ROOT/etc/xseq" "$ROOT/usr/share/doc/xseq"

log "BPF objects"
make -s -C bpf
mkdir -p "$OPT/bpf/build"
cp bpf/build/sequencer.bpf.o bpf/build/replica.bpf.o "$OPT/bpf/build/"

log "TypeScript -> JavaScript ($VERSION, commit $COMMIT)"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$OPT"
# The checkout's launchers load TypeScript through tsx; the package's run
# the compiled code.
mkdir -p "$OPT/agent/bin"
printf '#!/usr/bin/env node\n// xseq-agent, compiled: see agent/cli.ts in the source.\nimport "../cli.js";\n' > "$OPT/agent/bin/xseq-agent.js"
chmod 0755 "$OPT/agent/bin/xseq-agent.js"
ln -s ../../opt/xseq/agent/bin/xseq-agent.js "$ROOT/usr/bin/xseq-agent"
# There is no .git in the package: agent/version.ts reads the commit here.
printf '{"version":"%s","commit":"%s"}\n' "$VERSION" "$COMMIT" > "$OPT/build-info.json"
node -e '
  const p = require("./package.json");
  const out = { name: p.name, version: p.version, private: true, type: p.type, license: p.license, engines: p.engines, dependencies: {} };
  for (const d of ["koffi", "pino", "prom-client", "yaml", "zod"]) out.dependencies[d] = p.dependencies[d];
  require("fs").writeFileSync(process.argv[1], JSON.stringify(out, null, 2) + "\n");
' "$OPT/package.json"

log "production dependencies"
# The closure of the run-time dependencies, as npm installed them (flat),
# the platform's native modules included: the package is for this ARCH.
node -e '
  const fs = require("fs"), path = require("path");
  const want = ["koffi", "pino", "prom-client", "yaml", "zod"], seen = new Set();
  const visit = (name) => {
    if (seen.has(name)) return;
    seen.add(name);
    const pj = JSON.parse(fs.readFileSync(path.join("node_modules", name, "package.json"), "utf8"));
    for (const d of Object.keys(pj.dependencies ?? {})) visit(d);
    // Optional ones npm installed for this platform: the native koffi module.
    for (const d of Object.keys(pj.optionalDependencies ?? {})) if (fs.existsSync(path.join("node_modules", d))) visit(d);
  };
  want.forEach(visit);
  console.log([...seen].sort().join("\n"));
' > "$STAGE/deps"
while read -r dep; do
  mkdir -p "$OPT/node_modules/$(dirname "$dep")"
  cp -a "node_modules/$dep" "$OPT/node_modules/$dep"
done < "$STAGE/deps"

log "units, config, docs"
sed 's#^ExecStart=/usr/local/bin/xseq-agent #ExecStart=/usr/bin/xseq-agent #; s#^Documentation=.*#Documentation=file:/usr/share/doc/xseq/deploy-README.md#' deploy/systemd/xseq-agent.service > "$ROOT/lib/systemd/system/xseq-agent.service"
sed 's#^Documentation=.*#Documentation=file:/usr/share/doc/xseq/deploy-README.md#' 'deploy/systemd/xseq-replica@.service' > "$ROOT/lib/systemd/system/xseq-replica@.service"
cp deploy/agent.example.yaml "$ROOT/etc/xseq/agent.yaml"
cp README.md "$ROOT/usr/share/doc/xseq/README.md"
cp deploy/README.md "$ROOT/usr/share/doc/xseq/deploy-README.md"
cp -r docs "$ROOT/usr/share/doc/xseq/docs"
cp -r deploy/prometheus deploy/grafana tools/wireshark "$ROOT/usr/share/doc/xseq/"
cp examples/kv/replica.example.yaml "$ROOT/usr/share/doc/xseq/kv-replica.example.yaml"

cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: xseq
Version: $VERSION
Architecture: $ARCH
Maintainer: xseq developers <xseq@localhost>
Depends: nodejs (>= 20), libbpf1
Recommends: prometheus
Section: net
Priority: optional
Homepage: https://localhost/xseq
Description: network sequencer appliance (XDP sequencer, in-kernel quorum)
 xseq-agent loads an XDP program that stamps client requests with dense
 sequence numbers, multicasts them to a replica group, counts the replicas'
 ACKs in the kernel and answers each client once a quorum has the request.
 Includes the replica library and the example replicated key-value store.
 Build $COMMIT.
CONTROL
echo /etc/xseq/agent.yaml > "$ROOT/DEBIAN/conffiles"
cat > "$ROOT/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
# The units are installed, not enabled: /etc/xseq/agent.yaml names the
# interface and the groups, which only the operator knows.
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  if [ -z "$2" ]; then
    echo "xseq: edit /etc/xseq/agent.yaml, then: systemctl enable --now xseq-agent"
  elif systemctl is-active --quiet xseq-agent; then
    # An upgrade: the new agent adopts the pinned data path (no gap).
    systemctl restart xseq-agent || true
  fi
fi
exit 0
SCRIPT
cat > "$ROOT/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
# On removal the agent stops; its pinned data path stays attached and
# stamping (`xseq-agent detach --iface IF` before removing takes it away).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop xseq-agent 'xseq-replica@*' 2>/dev/null || true
fi
exit 0
SCRIPT
cat > "$ROOT/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
SCRIPT
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"
# Reproducible-ish: every file dated at the commit, not the build.
STAMP=$(git log -1 --format=%ct 2>/dev/null || date +%s)
find "$ROOT" -exec touch -h -d "@$STAMP" {} +

mkdir -p "$OUT"
DEB="$OUT/xseq_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
log "built $DEB ($(du -h "$DEB" | cut -f1))"
echo "$DEB"
