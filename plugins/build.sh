#!/usr/bin/env bash
# Build the standard filters (every crate in plugins/) into target/plugins/<dir>.wasm and the
# test fixtures (every crate in tests/fixtures/) into target/fixtures/<dir>.wasm, as
# wasm32-wasip2 components. `plugins/build.sh headers block` builds only those (by directory
# name, plugins or fixtures).
#
# Toolchain, chosen by itself (override with WEIR_WASM_TOOLCHAIN=rustup|offline):
#   1. rustup's wasm32-wasip2 target, installed now if missing and the network allows;
#   2. otherwise the offline route: Debian's rustc-web + rust-web-src + rust-web-llvm +
#      lld-22 + wasi-libc, building std with -Z build-std (see ../shared/TOOLCHAIN.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "plugins/build.sh: $*" >&2; }

# Filter crates: directories with a Cargo.toml, each a cdylib.
crates_in() { # dir
    local d
    for d in "$1"/*/; do
        [ -f "$d/Cargo.toml" ] && basename "$d"
    done
}
mapfile -t plugins < <(crates_in plugins)
mapfile -t fixtures < <(crates_in tests/fixtures)
if [ $# -gt 0 ]; then
    wanted=" $* "
    chosen=()
    for p in "${plugins[@]}"; do [[ $wanted == *" $p "* ]] && chosen+=("$p"); done
    plugins=("${chosen[@]+"${chosen[@]}"}")
    chosen=()
    for p in "${fixtures[@]}"; do [[ $wanted == *" $p "* ]] && chosen+=("$p"); done
    fixtures=("${chosen[@]+"${chosen[@]}"}")
    for name in "$@"; do
        [ -f "plugins/$name/Cargo.toml" ] || [ -f "tests/fixtures/$name/Cargo.toml" ] || {
            say "no filter crate named '$name' (looked for plugins/$name/Cargo.toml and tests/fixtures/$name/Cargo.toml)"
            exit 2
        }
    done
fi

# The package name of the crate in `dir`; refuses a crate that cannot become a component.
package_of() { # dir
    local name
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$1/Cargo.toml" | head -n1)
    [ -n "$name" ] || { say "$1/Cargo.toml has no package name"; exit 1; }
    grep -Eq 'crate-type *= *\[[^]]*"cdylib"' "$1/Cargo.toml" || {
        say "$1 is not a cdylib crate, so it cannot be built into a component: add" \
            "[lib] crate-type = [\"cdylib\", \"rlib\"] to $1/Cargo.toml"
        exit 1
    }
    echo "$name"
}
mode=${WEIR_WASM_TOOLCHAIN:-auto}
offline_packages=(rustc-web rust-web-src rust-web-llvm lld-22 wasi-libc)

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
declare -A package
for p in "${plugins[@]+"${plugins[@]}"}"; do package[plugins/$p]=$(package_of "plugins/$p"); done
for p in "${fixtures[@]+"${fixtures[@]}"}"; do package[tests/fixtures/$p]=$(package_of "tests/fixtures/$p"); done
for dir in "${!package[@]}"; do packages+=(-p "${package[$dir]}"); done

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
    [ -f "$src" ] || { say "cargo built no $src (is the crate's [lib] named differently?)"; exit 1; }
    # A component starts with the magic \0asm and version 0x0d 0x00 0x01 0x00.
    if [ "$(od -An -tx1 -N8 "$src" | tr -d ' \n')" != 0061736d0d000100 ]; then
        say "$src is not a WebAssembly component"
        exit 1
    fi
    cp "$src" "$2"
}
mkdir -p target/plugins target/fixtures
for p in "${plugins[@]+"${plugins[@]}"}"; do
    name=${package[plugins/$p]}
    install_component "${name//-/_}" "target/plugins/$p.wasm"
done
for p in "${fixtures[@]+"${fixtures[@]}"}"; do
    name=${package[tests/fixtures/$p]}
    install_component "${name//-/_}" "target/fixtures/$p.wasm"
done
say "built with the $mode toolchain: $(cd target/plugins && echo *.wasm) -> target/plugins; fixtures -> target/fixtures"
