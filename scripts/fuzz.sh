#!/usr/bin/env bash
# Bounded fuzzing of every input an outsider controls (fuzz/fuzz_targets/):
# link and webhook bodies, the config file, user agents and referrers,
# X-Forwarded-For, and stored click bytes.
#
#   scripts/fuzz.sh                 every target, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh link_input
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing).
# New inputs go to a scratch corpus, so the committed seeds in fuzz/corpus/
# stay as they are; a crash leaves its input in fuzz/artifacts/<target>/ and
# fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "== cargo fuzz build (nightly, address sanitizer)"
build_log="$(mktemp)"
if ! cargo +nightly fuzz build >"$build_log" 2>&1; then
    grep -v '^ *Compiling ' "$build_log" | head -n 80
    exit 1
fi
tail -n 1 "$build_log"
rm -f "$build_log"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if cargo +nightly fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        verdict=ok
    else
        verdict=FAILED
        status=1
        tail -n 40 "$log"
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    corpus="$(find "$scratch/$target" "fuzz/corpus/$target" -type f | wc -l)"
    echo "fuzz $target: $verdict, ${runs:-0} executions in ${seconds} s, corpus $corpus inputs"
done
exit "$status"
