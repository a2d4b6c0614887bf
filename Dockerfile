# The action's image, built once per release by .github/workflows/release.yml
# and named in the released action.yml as `docker://…@sha256:…` (a Dockerfile
# image would be rebuilt, Rust compile and all, at the start of every job).
#
# The final image holds one static binary, CA certificates, git (plan's
# local git mode, publish's `latest` guard) with the few libraries it links,
# and an empty /tmp (RUNNER_TEMP on Forgejo): no shell, no package manager.
# No USER: runners run container actions as root, and the workspace, the
# file-command files and the Docker socket are mounted for root.

ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22

FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
# musl-dev: ring's C code; the alpine target links statically by default.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY src ./src
RUN cargo build --release --locked --bin registry-action \
    && cp target/release/registry-action /registry-action

FROM alpine:${ALPINE_VERSION} AS rootfs
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
RUN apk add --no-cache git ca-certificates
# git and exactly the shared libraries it loads (musl's loader included),
# copied at their own paths into the tree the final image is made of.
RUN mkdir -p /rootfs/usr/bin /rootfs/etc/ssl/certs /rootfs/tmp \
    && chmod 1777 /rootfs/tmp \
    && cp /usr/bin/git /rootfs/usr/bin/git \
    && ldd /usr/bin/git | awk '/=>/ { print $3 } !/=>/ { print $1 }' | grep '^/' \
       | while read -r lib; do mkdir -p "/rootfs$(dirname "$lib")" && cp -L "$lib" "/rootfs$lib"; done \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/

FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=build /registry-action /usr/local/bin/registry-action
ENV PATH=/usr/local/bin:/usr/bin
ENTRYPOINT ["/usr/local/bin/registry-action"]
