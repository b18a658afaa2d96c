#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on stable Rust (the flags
# cargo-fuzz passes, without a sanitizer) and runs each for a bounded time.
#
#   fuzz/run.sh                 every target, 10 s each (what CI runs)
#   fuzz/run.sh 300 cel_rules   one target, 5 minutes
#
# Each target starts from its committed corpus in fuzz/corpus/<target>/; inputs it finds are
# written to a scratch corpus (target/fuzz-corpus/<target>/), never to the committed one. A
# crash stops the run, prints the input, and leaves it in target/fuzz-artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_head sse_splitter stream_translators body_translators config_loader cel_rules)
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target/fuzz}"
cargo build --release --target "$triple" --bins

scratch="$CARGO_TARGET_DIR/fuzz-corpus"
artifacts="$CARGO_TARGET_DIR/fuzz-artifacts"
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "$artifacts/$target"
  echo "== fuzz $target for ${seconds}s"
  log="$CARGO_TARGET_DIR/fuzz-$target.log"
  status=0
  "$CARGO_TARGET_DIR/$triple/release/$target" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target/" \
    "$scratch/$target" "corpus/$target" >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz target $target found a failure (exit $status); the input is in $artifacts/$target/"
    exit "$status"
  fi
done
