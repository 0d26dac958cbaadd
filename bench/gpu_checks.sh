#!/usr/bin/env bash
# The GPU checks in one run, for a lent GPU machine (one CUDA GPU, ~16 cores): `pytest -m gpu`,
# the cuDNN layout comparison, and bench/train_throughput.py for the LibriSpeech 960 h and 100 h
# models on synthetic LibriSpeech-like audio (the 960 h model with the log-mel on the GPU and
# with it in the loader's workers; then through torchrun and NCCL). Each result goes to $OUT (default /tmp/gpu_checks).
#
#     bash bench/gpu_checks.sh            # from the repository root, with asr importable
#
# Sized for a 10-minute call: about 5 minutes on an H200 with 16 cores.
set -u
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
SYN=${SYN:-/tmp/asr_synthetic}
git rev-parse --short HEAD 2>/dev/null | tee "$OUT/machine.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/machine.txt"
nproc | tee -a "$OUT/machine.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/machine.txt"

echo "== pytest -m gpu"
timeout 180 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt"

echo "== cuDNN: packed bidirectional vs asr's dense two-direction stack (960 h model's shapes)"
for prec in "" "--bf16"; do
  timeout 120 $PY bench/rnn_layout.py --device cuda $prec --layers 5 --hidden 512 --batch 75 --frames 320 \
    --repeats 10 2>&1 | tee -a "$OUT/rnn_layout.txt"
done

bench() {  # name, then train_throughput.py's arguments; $LAUNCH runs it (default: python)
  local name=$1; shift
  echo "== $name"
  timeout 240 ${LAUNCH:-$PY} bench/train_throughput.py --device cuda "$@" 2>&1 | tee "$OUT/$name.log" | tail -1 \
    | tee -a "$OUT/throughput.jsonl"
}
# 4,000 utterances (about 12.8 h): one epoch holds the 45 steps, so no epoch start is timed.
bench 960h_device_features --config recipes/librispeech/conf/train_960h.yaml --synthetic 4000 \
  --synthetic-dir "$SYN" --set train.features_on_device=true --set train.num_workers=12 --steps 40 --warmup 5
bench 960h_worker_features --config recipes/librispeech/conf/train_960h.yaml --manifest "$SYN/synthetic.jsonl" \
  --set train.features_on_device=false --set train.num_workers=12 --steps 40 --warmup 5
bench 100h_device_features --config recipes/librispeech/conf/train_100h.yaml --manifest "$SYN/synthetic.jsonl" \
  --set train.features_on_device=true --set train.num_workers=12 --steps 40 --warmup 5
# torchrun with one process: the NCCL path of distributed training
LAUNCH="$PY -m torch.distributed.run --nproc-per-node 1" bench torchrun_nccl \
  --config recipes/librispeech/conf/train_960h.yaml --manifest "$SYN/synthetic.jsonl" \
  --set train.features_on_device=true --set train.num_workers=12 --steps 20 --warmup 5
echo "== done"
