# syntax=docker/dockerfile:1
# switchboard-router: the OpenAI-compatible data plane.
#
#   docker build -f docker/router.Dockerfile -t switchboard-router .     # from the repository root
#
# Stage 1 builds with the Rust toolchain image; stage 2 is distroless (glibc, CA certificates, no
# shell, no package manager) running as the non-root user 65532 the chart's securityContext
# expects. Building fetches crates from crates.io; the image itself downloads nothing at run time.
ARG RUST_VERSION=1
ARG DEBIAN=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
COPY . .
# Debug info stays out of the image (the workspace keeps line tables for local profiling).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard-router --bin switchboard-router \
 && install -D -m 0755 target/release/switchboard-router /out/switchboard-router

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/switchboard-router /usr/local/bin/switchboard-router
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/switchboard-router"]
