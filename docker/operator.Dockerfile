# syntax=docker/dockerfile:1
# switchboard-operator: compiles the custom resources and pushes the snapshot to routers.
#
#   docker build -f docker/operator.Dockerfile -t switchboard-operator .     # from the repository root
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
    cargo build --release --locked -p switchboard-operator --bin switchboard-operator \
 && install -D -m 0755 target/release/switchboard-operator /out/switchboard-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/switchboard-operator /usr/local/bin/switchboard-operator
USER 65532:65532
EXPOSE 8081 9091
ENTRYPOINT ["/usr/local/bin/switchboard-operator"]
