#!/usr/bin/env bash
# Runs the distance-kernel tests for aarch64 (the NEON set) under qemu-user on an
# x86-64 machine. Not part of ./scripts/test.sh: it needs the aarch64 Rust target,
# a cross linker and qemu, which CI machines do not have.
#
# Usage: ./scripts/check-neon.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_packages qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

# The kernels live in pgrec-base, a crate without dependencies, so only it is
# cross-built (its tests include the kernel tests); pgrx is never cross-built.
cd "$REPO_ROOT"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test -p pgrec-base --target aarch64-unknown-linux-gnu --target-dir "$REPO_ROOT/target/check-neon"
