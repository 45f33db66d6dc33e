#!/usr/bin/env bash
# The project's test command (`npm test`): brings up what the tests need on a fresh machine
# (Debian's Chromium for the browser tests, a Redis for Redis mode), then type-checks and runs
# every test, and prints the closing "N passed, N failed" line.
# Extra arguments go to vitest, e.g. `npm test -- test/api.test.ts`.
set -uo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq || return 1; apt_updated=1; fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Browser tests drive Debian's Chromium through playwright-core, never a downloaded browser.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests"
  apt_install chromium || { echo "could not install chromium"; exit 1; }
fi

# Redis-mode tests use the Redis at TEST_REDIS_URL's port on loopback (default 6379); one is
# started, keeping nothing on disk, when none answers. Tests use their own key prefixes.
redis_port=6379
if [[ "${TEST_REDIS_URL:-}" =~ :([0-9]+)/?[0-9]*$ ]]; then redis_port="${BASH_REMATCH[1]}"; fi
redis_answers() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$redis_port" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3
    [[ "$reply" == +PONG* ]]
  ) 2>/dev/null
}
if ! redis_answers; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing Debian's redis-server for the Redis-mode tests"
    apt_install redis-server || { echo "could not install redis-server"; exit 1; }
  fi
  echo "starting redis-server on 127.0.0.1:$redis_port (nothing kept on disk)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { echo "redis-server did not answer on port $redis_port"; exit 1; }
fi

npx tsc --noEmit || { echo "0 passed, 1 failed (type-check)"; exit 1; }

mkdir -p reports
rm -f reports/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile=reports/vitest.json "$@"
status=$?
node scripts/test-summary.mjs reports/vitest.json || status=1
exit $status
