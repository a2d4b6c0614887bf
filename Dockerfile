# The action's image: a static binary and what local git mode needs.
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin registry-action \
 && cp target/release/registry-action /registry-action

FROM alpine:3
RUN apk add --no-cache git ca-certificates
COPY --from=build /registry-action /usr/local/bin/registry-action
ENTRYPOINT ["/usr/local/bin/registry-action"]
