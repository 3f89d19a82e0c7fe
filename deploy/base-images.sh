#!/usr/bin/env bash
# Builds the two base images deploy/Dockerfile takes as build arguments, from Debian's
# packages only (for hosts that cannot pull from Docker Hub):
#   costream-base:bookworm  a minimal Debian 12 (debootstrap --variant=minbase), the runtime base
#   costream-rust:bookworm  the base plus a C toolchain and Rust (rustup), the build stage's base
# Certificates the host trusts beyond Debian's (e.g. a proxy's CA in /usr/local/share/
# ca-certificates) are added to both, so that the build can reach crates.io through it.
# Needs root, debootstrap and a running Docker daemon. Usage: deploy/base-images.sh [RUST_VERSION]
set -euo pipefail
rust_version="${1:-1.95.0}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== costream-base:bookworm (debootstrap)"
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log"
mkdir -p "$work/rootfs/usr/local/share/ca-certificates"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
fi
tar -C "$work/rootfs" -c . | docker import - costream-base:bookworm-debootstrap >/dev/null
mkdir -p "$work/base"
cat >"$work/base/Dockerfile" <<'DOCKERFILE'
FROM costream-base:bookworm-debootstrap
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
DOCKERFILE
docker build -q -t costream-base:bookworm "$work/base" >/dev/null

echo "== costream-rust:bookworm (Rust $rust_version)"
mkdir -p "$work/rust"
cat >"$work/rust/Dockerfile" <<DOCKERFILE
FROM costream-base:bookworm
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      build-essential curl pkg-config \\
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:\$PATH
RUN curl -sSf https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init -o /tmp/rustup-init \\
 && chmod +x /tmp/rustup-init \\
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain $rust_version \\
 && rm /tmp/rustup-init
DOCKERFILE
docker build -q -t costream-rust:bookworm "$work/rust" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^costream-(base|rust):bookworm '
