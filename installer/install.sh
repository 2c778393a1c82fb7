#!/usr/bin/env bash
# Installs form on a fresh Debian/Ubuntu host and, with --node, the packages and systemd unit of a
# Formation node. Usage: install.sh [--node] [--from PATH_OR_TARBALL]
set -euo pipefail

NODE=0
SOURCE=formation-cli
while [ $# -gt 0 ]; do
  case "$1" in
    --node) NODE=1 ;;
    --from) SOURCE="$2"; shift ;;
    -h|--help) sed -n '2,3p' "$0" | sed 's/^# //'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it installs packages and a systemd unit)" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "install.sh: needs apt-get (Debian or Ubuntu)" >&2; exit 1; }

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates npm
if [ "$NODE" -eq 1 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    iproute2 iptables wireguard-tools wireguard-go qemu-system-x86 qemu-utils mmdebstrap e2fsprogs
fi

# form needs Node.js >= 22; Debian's may be older, so install a private Node 24 from npm when needed.
PREFIX=/opt/form
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
NODE_BIN=node
if [ "$major" -lt 22 ]; then
  npm install --prefix "$PREFIX/runtime" --no-audit --no-fund node@24 >/dev/null
  NODE_BIN="$PREFIX/runtime/node_modules/.bin/node"
fi
npm install --prefix "$PREFIX/app" --no-audit --no-fund "$SOURCE" >/dev/null
cat > /usr/local/bin/form <<WRAP
#!/bin/sh
exec "$NODE_BIN" "$PREFIX/app/node_modules/formation-cli/bin/form.js" "\$@"
WRAP
chmod 755 /usr/local/bin/form
form --version >/dev/null

if [ "$NODE" -eq 1 ]; then
  install -d -m 0750 /etc/form /var/lib/form
  install -m 0644 "$PREFIX/app/node_modules/formation-cli/templates/systemd/form-node.service" /etc/systemd/system/form-node.service
  systemctl daemon-reload 2>/dev/null || true
  echo "node installed: write /etc/form/operator.toml with 'form kit operator', then 'systemctl enable --now form-node'"
else
  echo "form installed: run 'form kit init' to create your wallet"
fi
