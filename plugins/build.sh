#!/usr/bin/env bash
# Build the standard filters (plugins/*) into target/plugins/<name>.wasm and the test
# fixtures (tests/fixtures/*) into target/fixtures/<name>.wasm, as wasm32-wasip2 components.
#
# Toolchain, chosen by itself (override with WEIR_WASM_TOOLCHAIN=rustup|offline):
#   1. rustup's wasm32-wasip2 target, installed now if missing and the network allows;
#   2. otherwise the offline route: Debian's rustc-web + rust-web-src + rust-web-llvm +
#      lld-22 + wasi-libc, building std with -Z build-std (see ../shared/TOOLCHAIN.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
plugins=(headers block api-key)
fixtures=(panic not-a-filter version services)
mode=${WEIR_WASM_TOOLCHAIN:-auto}
offline_packages=(rustc-web rust-web-src rust-web-llvm lld-22 wasi-libc)

say() { echo "plugins/build.sh: $*" >&2; }

rustup_target_ready() {
    command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2
}

try_rustup() {
    rustup_target_ready && return 0
    command -v rustup >/dev/null || { say "rustup not found"; return 1; }
    say "installing rustup target wasm32-wasip2"
    timeout 120 rustup target add wasm32-wasip2 >&2 && rustup_target_ready
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_offline_packages() {
    local missing=()
    for p in "${offline_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} (offline Wasm toolchain)"
        as_root apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}

if [ "$mode" = auto ]; then
    if try_rustup; then mode=rustup; else say "rustup's wasm32-wasip2 target is unavailable: using the offline route"; mode=offline; fi
fi

packages=()
for p in "${plugins[@]}"; do packages+=(-p "weir-plugin-$p"); done
for p in "${fixtures[@]}"; do packages+=(-p "weir-fixture-$p"); done

# A nested cargo must not inherit an outer build's compiler settings.
unset RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_BUILD_RUSTC

case "$mode" in
rustup)
    target_dir=target/wasm
    cargo build --profile plugin --target wasm32-wasip2 --target-dir "$target_dir" "${packages[@]}"
    ;;
offline)
    ensure_offline_packages
    target_dir=target/wasm-offline
    RUSTC_BOOTSTRAP=1 cargo build --profile plugin --target wasm32-wasip2 --target-dir "$target_dir" \
        --config 'build.rustc="/usr/bin/rustc"' \
        -Z build-std=std,panic_abort \
        --config 'target.wasm32-wasip2.rustflags=["-L","/usr/lib/wasm32-wasi"]' \
        "${packages[@]}"
    ;;
*)
    say "WEIR_WASM_TOOLCHAIN must be auto, rustup or offline (got '$mode')"
    exit 2
    ;;
esac

out=$target_dir/wasm32-wasip2/plugin
install_component() { # crate-file-stem destination
    local src=$out/$1.wasm
    # A component starts with the magic \0asm and version 0x0d 0x00 0x01 0x00.
    if [ "$(od -An -tx1 -N8 "$src" | tr -d ' \n')" != 0061736d0d000100 ]; then
        say "$src is not a WebAssembly component"
        exit 1
    fi
    cp "$src" "$2"
}
mkdir -p target/plugins target/fixtures
for p in "${plugins[@]}"; do install_component "weir_plugin_${p//-/_}" "target/plugins/$p.wasm"; done
for p in "${fixtures[@]}"; do install_component "weir_fixture_${p//-/_}" "target/fixtures/$p.wasm"; done
say "built with the $mode toolchain: $(cd target/plugins && echo *.wasm) -> target/plugins; fixtures -> target/fixtures"
