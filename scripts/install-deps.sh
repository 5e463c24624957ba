#!/usr/bin/env bash
# Installs what building and testing edgeplan needs, only where it is missing, quietly, and safe to run
# again: a C/C++ toolchain, cmake and libclang (highs-sys builds HiGHS and runs bindgen), the Rust
# toolchain (rustup, when cargo is missing), python3 with venv, and maturin + pytest for the Python
# package. apt-get is used on Debian/Ubuntu (through sudo when not root).
set -euo pipefail

log() { echo "install-deps: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- system packages (apt) ------------------------------------------------------------------------
pkgs=()
have cmake || pkgs+=(cmake)
have cc || pkgs+=(build-essential)
have c++ || pkgs+=(g++)
have clang || pkgs+=(clang)
have pkg-config || pkgs+=(pkg-config)
# bindgen needs libclang.so; LIBCLANG_PATH may point at a custom one.
if [ -z "${LIBCLANG_PATH:-}" ] \
  && ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' \
  && ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  pkgs+=(libclang-dev)
fi
have python3 || pkgs+=(python3 python3-pip)
if have python3 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then pkgs+=(python3-venv); fi
if have python3 && ! python3 -m pip --version >/dev/null 2>&1; then pkgs+=(python3-pip); fi
have curl || { have cargo || pkgs+=(curl ca-certificates); }

if [ ${#pkgs[@]} -gt 0 ]; then
  if have apt-get; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if have sudo; then SUDO="sudo"; else log "need root or sudo to install: ${pkgs[*]}"; exit 1; fi
    fi
    log "apt-get install ${pkgs[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  else
    log "missing ${pkgs[*]} and no apt-get: install them with your package manager"
    exit 1
  fi
fi

# --- Rust -----------------------------------------------------------------------------------------
if ! have cargo; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    log "installing the Rust toolchain with rustup (minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y -q --profile minimal >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
    log "Rust installed in ~/.cargo/bin (add it to PATH in new shells)"
  fi
fi

# --- Python tools ---------------------------------------------------------------------------------
py_missing=()
have maturin || python3 -m maturin --version >/dev/null 2>&1 || py_missing+=(maturin)
python3 -m pytest --version >/dev/null 2>&1 || py_missing+=(pytest)
if [ ${#py_missing[@]} -gt 0 ]; then
  log "pip install ${py_missing[*]}"
  # Debian's system Python is externally managed (PEP 668): fall back to a user install.
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}" >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages "${py_missing[@]}" >/dev/null
fi
exit 0
