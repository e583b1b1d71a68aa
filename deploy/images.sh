#!/usr/bin/env bash
# The deployment's images besides the service's (make container): Redis, nginx and the tracking
# server, each from Debian's packages on the local base image. `docker build` every time: its
# layer cache makes an unchanged image a matter of seconds.
set -euo pipefail
cd "$(dirname "$0")"
../container/base_image.sh
packages=$(grep -E '^(mlflow|psycopg2-binary)==' ../requirements.txt | tr '\n' ' ')
for name in redis nginx tracking; do
  echo "image botify-$name:bookworm (deploy/images/$name.Dockerfile)"
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg "PACKAGES=$packages" \
    -f "images/$name.Dockerfile" -t "botify-$name:bookworm" . >/dev/null
done
