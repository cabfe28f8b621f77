#!/bin/sh
# Seed corpora for the fuzz targets, built from valid files: tempo's own
# synthetic checkpoints, the real tokenizer, traces and masks.
set -e
tempo=$1 weights=$2 out=$3
mkdir -p "$out/checkpoint" "$out/hf" "$out/tokenizer" "$out/trace" "$out/mask" "$out/cli" "$out/gguf"
$tempo synth --out "$out/checkpoint/tied" --dim 8 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --vocab 16 --seq-len 8
$tempo synth --out "$out/checkpoint/untied" --dim 8 --hidden 12 --layers 2 --heads 2 --kv-heads 2 --vocab 12 --seq-len 4 --untied
# GGUF seeds: small files of a few stored types and the three vocabularies
for spec in "f32 spm 32 64" "q8_0 llama3 32 64" "q4_k gpt2 256 256" "q6_k spm 256 256"; do
  set -- $spec
  $tempo synth --format gguf --dtype $1 --tokenizer $2 --dim $3 --hidden $4 --layers 1 --heads 2 --kv-heads 1 --vocab 364 --seq-len 8 \
    --out "$out/gguf/$1-$2"
done
# tokenizer seed: u16 vocab (512), u16 prompt length, prompt, tokenizer.bin
printf '\000\002\022\000The cat sat on it.' > "$out/tokenizer/tok512"
cat "$weights/tok512.bin" >> "$out/tokenizer/tok512"
# tokenizer.json seeds (Llama 3 and GPT-2 style, vocab 384 and 320), with prompts that reach the special cases
$tempo synth --format hf --out "$out/hf-llama3" --dim 8 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --vocab 384 --seq-len 8
$tempo synth --format hf --out "$out/hf-gpt2" --dim 8 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --vocab 320 --seq-len 8 --tokenizer gpt2
printf '\177\001\047\000The DOG'"'"'S 1234567  \r\n\n x<|eot_id|>\303\234ber' > "$out/tokenizer/json-llama3"
cat "$out/hf-llama3/tokenizer.json" >> "$out/tokenizer/json-llama3"
printf '\077\001\041\000the cat'"'"'s  \t1234 <|endoftext|>\343\201\202' > "$out/tokenizer/json-gpt2"
cat "$out/hf-gpt2/tokenizer.json" >> "$out/tokenizer/json-gpt2"
rm -rf "$out/hf-llama3" "$out/hf-gpt2"
$tempo synth --out "$out/trace.model" --dim 16 --hidden 32 --layers 2 --heads 2 --kv-heads 1 --vocab 32 --seq-len 16
$tempo forward -m "$out/trace.model" --tokens 1,5,7,7,9 --positions 0,1,2,2,3 --mask isolated --out "$out/trace/isolated" >/dev/null 2>&1
$tempo generate -m "$out/trace.model" --tokens 1,5,7 -n 3 --threshold 0.05 --isolate-layers 1-1 --trace "$out/trace/layers-bits" >/dev/null 2>&1
$tempo generate -m "$out/trace.model" --tokens 1,5,7 -n 4 --threshold 0.05 --isolate-layers 1-1 --prune attention --prune-layers 1 \
  --trace "$out/trace/layers-rule" --trace-mask rule >/dev/null 2>&1
rm -f "$out/trace.model"
# a dense trace as other engines write it (allowed U8[n,n]), beside tempo's packed allowed_bits
python3 - "$out/trace/dense" <<'PY'
import json, struct, sys
n = 3
blobs = {"tokens": ("I32", [n], struct.pack("<3i", 1, 5, 7)), "positions": ("I32", [n], struct.pack("<3i", 0, 1, 2)),
         "allowed": ("U8", [n, n], bytes([1, 0, 0, 1, 1, 0, 1, 1, 1]))}
header, data = {}, b""
for name, (dtype, shape, raw) in blobs.items():
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
text = json.dumps(header).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
printf '\003100\n110\n111\n' > "$out/mask/causal3"
printf '\004 1000 1100 1010 1001' > "$out/mask/isolated4"
printf '\001--tokens\n1,5,7,7\n--positions\n0,1,2,2\n--mask\nisolated' > "$out/cli/forward"
printf '\002-p\nThe cat\n--threshold\n0.05\n-n\n6\n--mode\nvisible\n--prune\nattention' > "$out/cli/generate"
printf '\003-p\nOnce upon a time\n--dynamic-threshold\n--bezier\n0.3,0.7' > "$out/cli/compare"
# hf seed: u16 config length, config.json, model.safetensors (stories260K-hf)
python3 - "$weights/stories260K-hf" "$out/hf/stories260K" <<'PY'
import sys, struct
src, dst = sys.argv[1], sys.argv[2]
config = open(src + "/config.json", "rb").read()
open(dst, "wb").write(struct.pack("<H", len(config)) + config + open(src + "/model.safetensors", "rb").read())
PY
