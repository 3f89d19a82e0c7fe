#!/usr/bin/env bash
# Validates the manifests offline against the Kubernetes API schemas (strict: unknown fields
# fail), for the oldest and newest versions they target. The schemas come with the
# kubernetes-validate package (pip install kubernetes-validate).
set -euo pipefail
cd "$(dirname "$0")"
# 1.30 is the first version with the preStop `sleep` action the Deployment uses.
for version in 1.30.0 1.34.0; do
    kubernetes-validate --strict --quiet -k "$version" ./*.yaml
done
echo "manifests valid for Kubernetes 1.30 and 1.34"
