#!/usr/bin/env bash
# Installs what the end-to-end tests (test/e2e) need, from the npm registry and
# Debian's packages only (see shared/E2E.md):
#   - Debian: chromium, ripgrep, and the headers code-server's native modules build against;
#   - code-server 4.100.3 (VS Code 1.100.3 for the browser) into .vscode-test/code-server-4.100.3/.
# Idempotent: a second run only checks the Debian packages and the marker file
# written after `code-server --version` answered. Needs no standard input.
#
#   bash scripts/setup-e2e.sh          (or: npm run setup:e2e)
#   E2E_FORCE=1 bash scripts/setup-e2e.sh   reinstall code-server from scratch
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
VSCODE_VERSION=1.100.3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.vscode-test/code-server-$CODE_SERVER_VERSION"
MARKER="$CACHE/.setup-complete"
CS_DIR="$CACHE/node_modules/code-server"
VSCODE_DIR="$CS_DIR/lib/vscode"
DEB_PACKAGES=(chromium ripgrep libkrb5-dev libxkbfile-dev libsecret-1-dev libx11-dev)

say() { printf 'setup-e2e: %s\n' "$*"; }
die() { printf 'setup-e2e: ERROR: %s\n' "$*" >&2; exit 1; }

# Runs one named step; on failure says which step failed and where.
step() {
  local name="$1"; shift
  say "$name"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    die "step '$name' failed (exit $rc) in $(pwd). Fix the cause above and run 'npm run setup:e2e' again (E2E_FORCE=1 starts the code-server install from scratch)."
  fi
}

# ---------------------------------------------------------------- tools
command -v node >/dev/null || die "node is not on PATH (Node 20 or later is needed)."
command -v npm >/dev/null || die "npm is not on PATH."
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  die "Node $(node --version) is too old; code-server $CODE_SERVER_VERSION needs Node 20."
fi

# ---------------------------------------------------------------- Debian packages
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [ "$status" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}. As root, run:
    $cmd"
  fi
  command -v apt-get >/dev/null || die "missing Debian packages (${missing[*]}) and there is no apt-get here."
  say "installing Debian packages: ${missing[*]}"
  step "apt-get update" apt-get -o DPkg::Lock::Timeout=300 update -q
  step "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}"
else
  say "Debian packages present: ${DEB_PACKAGES[*]}"
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing although the chromium package is installed."
[ -x /usr/bin/rg ] || die "/usr/bin/rg is missing although the ripgrep package is installed."

# ---------------------------------------------------------------- code-server
# code-server writes a default config (with a password) where --config points
# if nothing is there: keep it in the cache, never in the user's ~/.config.
CS_CONFIG="$CACHE/config.yaml"
code_server_version() {
  node "$CS_DIR/out/node/entry.js" --config "$CS_CONFIG" --version 2>&1 | grep -m 1 ' with Code '
}

if [ "${E2E_FORCE:-}" = "1" ]; then
  say "E2E_FORCE=1: removing $CACHE"
  rm -rf "$CACHE"
fi

if [ -f "$MARKER" ] && [ -f "$CS_DIR/out/node/entry.js" ] && [ "$(cat "$MARKER")" = "$CODE_SERVER_VERSION" ]; then
  say "code-server $CODE_SERVER_VERSION already set up in $CACHE"
  exit 0
fi

started=$SECONDS
rm -f "$MARKER"
mkdir -p "$CACHE"
# Its own package.json, so npm installs here and never touches the project's.
if [ ! -f "$CACHE/package.json" ]; then
  printf '{\n  "name": "e2e-code-server-cache",\n  "private": true,\n  "description": "code-server for test/e2e, installed by scripts/setup-e2e.sh"\n}\n' >"$CACHE/package.json"
fi

[ -f "$CS_CONFIG" ] || printf 'bind-addr: 127.0.0.1:8080\nauth: none\ncert: false\n' >"$CS_CONFIG"

export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

cd "$CACHE"
# Its postinstall refuses root and downloads ripgrep from outside npm: do its steps by hand.
step "npm install --ignore-scripts code-server@$CODE_SERVER_VERSION" \
  npm install --ignore-scripts "code-server@$CODE_SERVER_VERSION"
[ -d "$VSCODE_DIR" ] || die "code-server was installed but $VSCODE_DIR is missing."

cd "$VSCODE_DIR"
step "lib/vscode: npm install --omit=dev --ignore-scripts" npm install --omit=dev --ignore-scripts
step "lib/vscode: copy /usr/bin/rg into @vscode/ripgrep" \
  bash -c 'mkdir -p node_modules/@vscode/ripgrep/bin && cp -f /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg && chmod +x node_modules/@vscode/ripgrep/bin/rg'
# npm 11 skips dependencies' install scripts unless the project allows them by
# name (and refuses --allow-scripts on the command line there): allow the ones
# that build the native modules code-server needs on Linux. Older npm ignores it.
printf 'allow-scripts=%s\n' 'kerberos,native-watchdog,node-pty,@parcel/watcher,@vscode/deviceid,@vscode/spdlog,@vscode/ripgrep' >.npmrc
# node-pty's install script calls `npx node-gyp`: npm_config_yes answers its prompt.
step "lib/vscode: npm rebuild (native modules)" env npm_config_yes=true npm rebuild
if [ ! -e node_modules.asar ]; then
  step "lib/vscode: ln -s node_modules node_modules.asar" ln -s node_modules node_modules.asar
fi

cd "$VSCODE_DIR/extensions"
step "lib/vscode/extensions: npm install --omit=dev" npm install --omit=dev

cd "$CACHE"
printf 'allow-scripts=argon2\n' >.npmrc
step "code-server: npm rebuild argon2" npm rebuild argon2

version="$(code_server_version || true)"
case "$version" in
  "$CODE_SERVER_VERSION"*"$VSCODE_VERSION"*) ;;
  *) node "$CS_DIR/out/node/entry.js" --config "$CS_CONFIG" --version || true
     die "code-server --version printed '$version', expected '$CODE_SERVER_VERSION ... with Code $VSCODE_VERSION'." ;;
esac
printf '%s\n' "$CODE_SERVER_VERSION" >"$MARKER"
say "code-server ready: $version ($((SECONDS - started)) s)"
