#!/usr/bin/env bash
# Runs every huixi test on a fresh machine: starts the services the tests talk to when they are down,
# then builds and runs the unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

wait_for() { # NAME CHECK-COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up" >&2
  return 1
}

if ! mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mariadb -uroot -h127.0.0.1 -e 'SELECT 1'
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ rabbitmqctl -q await_startup
fi

# The eval tests check that the HTML report renders, in Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi

cargo test --locked "$@"
