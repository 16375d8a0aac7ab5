#!/usr/bin/env bash
# Runs the distance-kernel tests for aarch64 (the NEON set) under qemu-user on an
# x86-64 machine. Not part of ./scripts/test.sh: it needs the aarch64 Rust target,
# a cross linker and qemu, which CI machines do not have.
#
# Usage: ./scripts/check-neon.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_packages qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

# The kernels are a pure core, so a throwaway crate that includes just that
# module is enough, and avoids cross-building pgrx.
work="$REPO_ROOT/target/check-neon"
mkdir -p "$work/src"
printf '[package]\nname = "kernels_neon_check"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n' >"$work/Cargo.toml"
printf '#[path = "%s/src/kernels/mod.rs"]\npub mod kernels;\n' "$REPO_ROOT" >"$work/src/lib.rs"
cd "$work"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test --target aarch64-unknown-linux-gnu --target-dir "$work/target"
