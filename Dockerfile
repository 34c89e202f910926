# syntax=docker/dockerfile:1
# Agentry container image: one binary, `agentry`, built from the `agentry` crate.
#
#   docker build -t agentry .
#   docker run --rm -e DATABASE_URL=postgres://... -p 8080:8080 agentry          # serve
#   docker run --rm -e DATABASE_URL=postgres://... agentry worker                 # worker
#
# Migrations are embedded in the binary (sqlx::migrate!) and applied at start, so the runtime
# image needs nothing but the binary and CA certificates (for HTTPS to LLM endpoints / Stripe).

# ---- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Only sqlx::migrate! reads files at compile time; should query! macros appear later, they must
# build from the checked-in .sqlx/ data: there is no database during `docker build`.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

COPY . .

# Cache mounts keep downloaded crates and compiled dependencies between builds. The target
# directory is a cache mount, which is not part of the image, so the binary is copied out of it
# in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p agentry --bin agentry \
    && install -D -m 0755 target/release/agentry /out/agentry

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Run unprivileged; /var/lib/agentry is the working directory and the only writable place.
RUN groupadd --system --gid 10001 agentry \
    && useradd --system --uid 10001 --gid agentry --home-dir /var/lib/agentry --create-home \
        --shell /usr/sbin/nologin agentry

COPY --from=builder /out/agentry /usr/local/bin/agentry

USER agentry:agentry
WORKDIR /var/lib/agentry

# Inside a container the API must listen on all interfaces (the binary's default is loopback).
ENV AGENTRY_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080

# No curl in this image: compose.yaml probes /readyz with bash's /dev/tcp instead.
ENTRYPOINT ["agentry"]
CMD ["serve"]
