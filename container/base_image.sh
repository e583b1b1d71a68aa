#!/usr/bin/env bash
# The Bento's base image, made locally (there is no Docker Hub here): a minimal Debian
# bookworm with its Python 3.11 and venv, imported into the engine as $BASE_IMAGE.
# Cached: an image that `docker image inspect` finds is kept while it was made by this very
# script (its label botify.recipe is the script's hash); a changed script makes it anew.
#
# The host's CA bundle goes into the image so that pip and uv inside `docker build` reach
# the package index through whatever TLS the host trusts. No pip in the system Python: images
# install their packages into a venv (python3-venv brings the pip that goes into it).
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-botify-base:bookworm-py311}
RECIPE=$(sha256sum "$0" | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "botify.recipe"}}' "$BASE_IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
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
debootstrap --variant=minbase --include=python3.11,python3-venv,ca-certificates \
  bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf '[global]\nbreak-system-packages = true\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$ROOT/etc/pip.conf"
ln -sf python3 "$ROOT/usr/bin/python"
# no documentation, manual pages or translations, now or in what images built on it install
printf 'path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
  > "$ROOT/etc/dpkg/dpkg.cfg.d/01-botify-slim"
find "$ROOT/usr/share/doc" -type f ! -name copyright -delete
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | docker import \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV UV_NATIVE_TLS=1' \
  --change "LABEL botify.recipe=$RECIPE" \
  --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: built ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
