# nginx from Debian's package (nginx-light), on the project's locally made base image.
ARG BASE=botify-base:bookworm-py311
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
ENTRYPOINT ["nginx", "-g", "daemon off;", "-c", "/etc/botify/nginx.conf"]
