# Redis from Debian's package, on the project's locally made base image (container/base_image.sh).
ARG BASE=botify-base:bookworm-py311
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
ENTRYPOINT ["redis-server"]
