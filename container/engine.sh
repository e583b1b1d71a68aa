#!/usr/bin/env bash
# Start a Docker engine if none answers: `dockerd` with no iptables and no bridge (what works
# on these machines; containers then run with --network host), on the overlay2 storage driver
# when the kernel can mount overlayfs here, else vfs (which copies every layer in full: an
# image build takes tens of minutes instead of a few). DOCKER_STORAGE_DRIVER forces one.
# Needs root. Idempotent: an engine that already answers `docker info` is left alone.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "engine.sh: no Docker engine answers and starting one needs root (dockerd); start it and retry" >&2
  exit 2
fi
command -v dockerd >/dev/null || {
  echo "engine.sh: dockerd missing: installing the Debian package docker.io" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
}
DRIVER=${DOCKER_STORAGE_DRIVER:-}
if [ -z "$DRIVER" ]; then
  probe=$(mktemp -d /var/tmp/botify-overlay.XXXXXX)
  mkdir -p "$probe"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    umount "$probe/m"; DRIVER=overlay2
  else
    DRIVER=vfs
  fi
  rm -rf "$probe"
fi
LOG=${DOCKERD_LOG:-/var/log/botify-dockerd.log}
echo "starting dockerd ($DRIVER, no iptables, no bridge); log: $LOG" >&2
setsid nohup dockerd --storage-driver "$DRIVER" --iptables=false --bridge=none >"$LOG" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "engine.sh: dockerd did not answer within 60 s; tail of $LOG:" >&2
tail -20 "$LOG" >&2
exit 1
