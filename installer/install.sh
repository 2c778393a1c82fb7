#!/usr/bin/env bash
# Installs form on a Debian/Ubuntu host and, with --node, the packages and systemd unit of a node.
# Usage: install.sh [--node] [--from NAME|PATH|TARBALL] [--prefix DIR] [--root DIR] [--no-packages]
#   --from         what to install (default: formation-cli from the npm registry; `npm pack` makes a tarball)
#   --prefix       where form goes (default /usr/local): DIR/bin/form, DIR/share/man/man1/form*.1
#   --root         install the unit and /etc/form under DIR instead of / (packaging, tests)
#   --no-packages  do not run apt-get (the packages are there already)
set -euo pipefail

NODE=0
SOURCE=formation-cli
PREFIX=/usr/local
ROOT=
PACKAGES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --node) NODE=1 ;;
    --from) SOURCE="$2"; shift ;;
    --prefix) PREFIX="$2"; shift ;;
    --root) ROOT="$2"; shift ;;
    --no-packages) PACKAGES=0 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$PACKAGES" -eq 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it installs packages), or pass --no-packages" >&2; exit 1; }
  command -v apt-get >/dev/null || { echo "install.sh: needs apt-get (Debian or Ubuntu), or pass --no-packages" >&2; exit 1; }
  apt-get update -qq
  # man-db: `man form` reads the pages npm links into PREFIX/share/man
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates npm man-db
  if [ "$NODE" -eq 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      iproute2 iptables wireguard-tools wireguard-go qemu-system-x86 qemu-utils mmdebstrap e2fsprogs
  fi
fi
command -v npm >/dev/null || { echo "install.sh: npm is missing (apt-get install npm)" >&2; exit 1; }

# A global npm install: PREFIX/bin/form links to the package's bin/form.js, and npm links the man pages
# (package.json "directories.man") into PREFIX/share/man/man1, where `man` looks. The package depends on
# Node 24 (npm package "node"), and bin/form.js re-runs itself under it when the system's Node is older
# than 22 (Debian 12 has 20), so no wrapper is needed.
# a local folder or tarball must be an absolute path, or npm reads "dir/x.tgz" as a GitHub repository
if [ -e "$SOURCE" ]; then SOURCE=$(realpath "$SOURCE"); fi
npm install --global --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "$SOURCE" >/dev/null
"$PREFIX/bin/form" --version >/dev/null
if command -v mandb >/dev/null && [ -z "$ROOT" ]; then mandb -q 2>/dev/null || true; fi

if [ "$NODE" -eq 1 ]; then
  PKG="$PREFIX/lib/node_modules/formation-cli"
  install -d -m 0750 "$ROOT/etc/form"
  install -d -m 0755 "$ROOT/etc/systemd/system"
  # the unit names /usr/local/bin/form; point it at this prefix
  sed "s#/usr/local/bin/form#$PREFIX/bin/form#g" "$PKG/templates/systemd/form-node.service" > "$ROOT/etc/systemd/system/form-node.service"
  chmod 0644 "$ROOT/etc/systemd/system/form-node.service"
  [ -n "$ROOT" ] || systemctl daemon-reload 2>/dev/null || true
  echo "node installed: write /etc/form/operator.toml with 'form kit operator', then 'systemctl enable --now form-node'"
else
  echo "form installed ($PREFIX/bin/form, man form): run 'form kit init' to create your wallet"
fi
