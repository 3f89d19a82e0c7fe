#!/usr/bin/env bash
# Smoke test of the GPU image (deploy/Dockerfile.gpu) on a host without a GPU: the image gets
# Debian's lavapipe (a software Vulkan device) as an extra package, so the very binary, loader
# and wgpu path the NVIDIA deployment uses serve the clip. On a GPU host, run the image with
# `--gpus all` instead (without EXTRA_PACKAGES) and the same checks apply.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-costream:smoke-gpu}" \
DOCKERFILE=deploy/Dockerfile.gpu \
BUILD_ARGS="--build-arg EXTRA_PACKAGES=mesa-vulkan-drivers" \
EXPECT_DEVICE=wgpu \
READY_WAIT_S=600 \
    exec deploy/smoke.sh
