#!/usr/bin/env bash
# The Bento's base image, made locally (there is no Docker Hub here): a minimal Debian
# bookworm with its Python 3.11, venv and pip, imported into the engine as $BASE_IMAGE.
# Cached: an image that `docker image inspect` finds is kept (delete it to rebuild).
#
# The host's CA bundle goes into the image so that pip and uv inside `docker build` reach
# the package index through whatever TLS the host trusts; pip may install into the system
# Python of this build image (BentoML's Dockerfile installs uv with pip, then makes its own venv).
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-botify-base:bookworm-py311}
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE: cached"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "base_image.sh: debootstrap missing: installing the Debian package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /tmp/botify-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base image $BASE_IMAGE: debootstrap bookworm into $ROOT (about 2 minutes)"
debootstrap --variant=minbase --include=python3.11,python3-venv,python3-pip,ca-certificates \
  bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf '[global]\nbreak-system-packages = true\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$ROOT/etc/pip.conf"
ln -sf python3 "$ROOT/usr/bin/python"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | docker import \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV UV_NATIVE_TLS=1' \
  --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: built ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
