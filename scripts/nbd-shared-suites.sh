#!/usr/bin/env bash
# The external NBD suites our server was first measured with, when a ../shared/tools folder
# sits beside the checkout (.ci/run calls this only then; `npm test` never needs it: our
# own checks are test/e2e/nbd-conformance.test.ts and nbd-mount.test.ts).
#
#   scripts/nbd-shared-suites.sh TOOLS_DIR
#
# 1. nbd-conformance.sh with every optional feature required and unknown names refused, on
#    an in-memory export and on a sparse file export: 39 pass, 0 fail, 0 skip each.
# 2. nbd-mount-home-test.sh (root only): the home image as the default export
#    (`--export =IMG`), attached by nbdfuse as nbd://127.0.0.1:PORT.
# Exits non-zero if any of them fails. Runs the dist/ bundle (npm ci builds it).
set -euo pipefail
tools=${1:?usage: $0 TOOLS_DIR}
cd "$(dirname "$0")/.."
export PATH=/usr/bin:/usr/sbin:/bin:/sbin:$PATH
node scripts/build.mjs >/dev/null

work=$(mktemp -d /var/tmp/prolo-nbd-shared.XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; wait "$server_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

truncate -s 256M "$work/scratch.img"
# 2 GiB with 1 MiB of data every 100 MiB: holes for sparse_map to find.
for i in $(seq 0 19); do dd if=/dev/zero bs=1M count=1 status=none | tr '\0' 'Z' | dd of="$work/sparse.img" bs=1M seek=$((i * 100)) conv=notrunc status=none; done
truncate -s 2G "$work/sparse.img"

node dist/prolo.mjs nbd serve --listen 127.0.0.1:0 --export scratch=mem:256M \
  --export "file=$work/scratch.img" --export "sparse=$work/sparse.img,ro" >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's/.*nbd serving on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log")
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "nbd-shared-suites: the server did not listen"; cat "$work/server.log"; exit 1; }

failed=0
conformance() { # EXPORT [ENV=VALUE…]
  local name=$1 out
  shift
  out=$(env REQUIRE=all STRICT_EXPORTS=1 "$@" bash "$tools/nbd-conformance.sh" 127.0.0.1 "$port" "$name" 2>&1) || true
  echo "$out"
  if ! grep -q '^# summary: 39 pass, 0 fail, 0 warn, 0 skip$' <<<"$out"; then
    echo "nbd-shared-suites: nbd-conformance.sh on export $name did not give 39 pass, 0 fail, 0 warn, 0 skip"
    failed=1
  fi
}
conformance scratch
conformance file SPARSE_EXPORT=sparse
kill "$server_pid"
wait "$server_pid" || { echo "nbd-shared-suites: the server did not exit 0 on SIGTERM"; failed=1; }
server_pid=

if [[ $(id -u) -eq 0 ]]; then
  # The script starts (setsid) and stops the server itself; it needs the port first.
  mport=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  if ! MODE=loop KEEP=0 bash "$tools/nbd-mount-home-test.sh" \
    "node $PWD/dist/prolo.mjs nbd serve --listen 127.0.0.1:$mport --export =@IMG@" "$mport" ""; then
    echo "nbd-shared-suites: nbd-mount-home-test.sh failed"
    failed=1
  fi
else
  echo "nbd-shared-suites: nbd-mount-home-test.sh needs root, not run"
fi
exit "$failed"
