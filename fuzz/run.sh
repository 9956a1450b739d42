#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) one after another, each as one in-process
# libFuzzer worker (no -jobs: libFuzzer's -jobs=1 forks and logs to fuzz-0.log),
# for SECS seconds (default 240), growing fuzz/corpus/<target>/ in place, then prints
# libFuzzer's final stats line per target. Works on stable Rust through RUSTC_BOOTSTRAP=1
# (cargo-fuzz passes nightly-only -Z flags). Logs: fuzz/logs/<target>.log (not committed).
set -euo pipefail
cd "$(dirname "$0")"
SECS="${SECS:-240}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(facts custody signature_headers xff policy_yaml guard_decision egress_args connection egress_connection)
mkdir -p logs
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  start=$(date +%s)
  rc=0
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" \
    -print_final_stats=1 "${dict[@]}" >"logs/$t.log" 2>&1 || rc=$?
  end=$(date +%s)
  echo "$t: rc=$rc wall=$((end - start))s $(grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$t.log" | tail -1)"
  echo "  corpus: $(find "corpus/$t" -type f | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
done
