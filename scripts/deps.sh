#!/usr/bin/env bash
# deps.sh - install the Debian packages llmpress builds with, if any is missing.
# OpenBLAS is the OpenMP build, so BLAS and our own kernels share one thread pool.
set -euo pipefail
pkgs="cmake make gcc pkg-config libopenblas-openmp-dev liblapacke-dev libpcre2-dev zlib1g-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing >&2
fi
