#!/usr/bin/env bash
# The GPU figures in one run: training target tokens/s, MFU against the measured matmul peak of
# the dtype used, peak memory, greedy and beam-5 sentences/s and their BLEU, in float32,
# 16-mixed and bf16-mixed, for the reference configuration (conf/experiment/reference.yaml) and
# a wider model (2-layer BiLSTM 512 per direction, 2-layer LSTM decoder 1024, embeddings 512).
#
#   SEQ2SEQ_DATA_DIR=DATA bash experiments/gpu_check.sh OUT [benchmark.py options]
#   e.g. bash experiments/gpu_check.sh gpu-figures --steps 200
#
# Writes OUT/results.jsonl (benchmark.py's JSON line of each run, with its model), OUT/log.txt
# (every run's output) and OUT/device.txt (GPU, driver, torch, CUDA and cuDNN versions). A run
# that fails is logged and skipped. DEVICE=cpu runs the same on a CPU (a smoke test, with
# --quick). PYTHON picks the interpreter (default: python3).
set -uo pipefail

out=${1:?usage: bash experiments/gpu_check.sh OUT_DIR [benchmark.py options]}
shift
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
: > "$out/results.jsonl"
: > "$out/log.txt"

"$py" - > "$out/device.txt" 2>&1 <<'EOF'
import platform, torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "python", platform.python_version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.0f} GiB,", p.multi_processor_count, "SMs,",
          "bf16" if torch.cuda.is_bf16_supported() else "no bf16")
EOF
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$out/device.txt"
fi
cat "$out/device.txt"

wide="model.emb_size=512 model.encoder.num_layers=2 model.encoder.hidden_size=512"
wide="$wide model.decoder.num_layers=2 model.decoder.hidden_size=1024"
failed=0
for model in reference wide; do
    overrides=""
    [ "$model" = wide ] && overrides=$wide
    for precision in 32-true 16-mixed bf16-mixed; do
        echo "== $model $precision" | tee -a "$out/log.txt"
        json="$out/.run.json"
        rm -f "$json"
        # shellcheck disable=SC2086  # the overrides are words
        if "$py" "$here/benchmark.py" --device "$device" --precision "$precision" \
                --json "$json" "$@" $overrides >> "$out/log.txt" 2>&1; then
            "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); r["model"] = sys.argv[2]; print(json.dumps(r))' \
                "$json" "$model" >> "$out/results.jsonl"
            tail -n 30 "$out/log.txt" | grep -E "^(train_tokens_per_s|mfu|greedy_sents_per_s|beam5_sents_per_s) "
        else
            echo "   failed: see $out/log.txt" | tee -a "$out/log.txt"
            failed=$((failed + 1))
        fi
    done
done
rm -f "$out/.run.json"
echo "$(wc -l < "$out/results.jsonl") runs in $out/results.jsonl, $failed failed"
[ "$failed" -eq 0 ]
