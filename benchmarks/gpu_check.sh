#!/usr/bin/env bash
# The GPU checks of one lease, in one go: the CUDA tests, then the variants suite (base, HR,
# large against the peer, eager), then ours under torch.compile. Logs and tables go to $OUT.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh      # on a machine with a CUDA GPU
#   STAGES="cuda_tests profile" OUT=/tmp/gpu bash benchmarks/gpu_check.sh   # some stages only
#   STAGES="compiled_hr" COMPILED_VARIANTS=hr COMPILED_OURS=default,sdpa OUT=... bash ...
# attention_compiled (the attention suite with the compiled plain path) runs only when named, and
# so do the four stages of the Triton kernel for short groups (layers/short_groups.py), which
# fit one call of a lease (their limits add up to 570 s; the compiled stage took 204 s on a
# fresh H100, 72 s with inductor's cache warm from an earlier run):
#   STAGES="short_tests short_bench short_compiled short_variants" OUT=/tmp/gpu \
#       bash benchmarks/gpu_check.sh
# The compiled stage, which answered whether the kernel should run in compiled graphs too
# (attention.CUDA_SHORT_GROUP_KERNEL_COMPILED: yes, results/variants_gpu_compiled_short.md),
# took 214 s on a fresh H200: give it its full 240 s. The CUDA tests (36) need their full
# 180 s: given 120 s on 2026-11-27, they had run 32.
#   STAGES="compiled_autotune" OUT=/tmp/gpu bash benchmarks/gpu_check.sh   # max-autotune, alone
# AUTOTUNE_OURS=default,kernel compiles both settings there (the second reuses the first one's
# autotuned products). It did not finish in 330 s (results/compiled_autotune_gpu.md).
#
# Owed to the next lease (one call, stage limits 505 s): the CUDA tests with the short-group
# kernel in compiled graphs, its probe asked while they are traced, and fp32 kept off it (none
# of it has run on a GPU), HR compiled with the kernel, and a compiled profile of base's step
# with it (what is left for the 45% target):
#   STAGES="cuda_tests compiled_hr profile_compiled" COMPILED_VARIANTS=hr COMPILED_LIMIT=225 \
#       OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# PyAV and OmegaConf, if missing there, travel as wheels in .whl/ (installed to /tmp/site).
# Each stage has its own time limit, so that a slow one cannot take the others' results.
set -u
OUT=${OUT:-/tmp/gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH=$PWD/src
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src
fi
peak=${PEAK_TFLOPS:-989}  # dense bf16 of an H100 SXM (the H200's is the same)
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import torch, transformers as t; print(torch.__version__, t.__version__)"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

STAGES=${STAGES:-cuda_tests attention variants compiled_base compiled_hr profile_compiled profile}
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    [[ " $STAGES " == *" $name "* ]] || return 0
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - t0)) s"
    tail -n 25 "$OUT/$name.log"
}

stage cuda_tests ${TESTS_LIMIT:-180} $PY -m pytest tests/gpu -q -p no:cacheprovider
stage attention 90 $PY benchmarks/bench_model.py --suite attention --device cuda --batch 32 \
    --reps 10 --out "$OUT/attention_gpu.md"
stage variants 200 $PY benchmarks/bench_model.py --suite variants --device cuda \
    --variants base,hr,large --batch base=32,hr=2,large=2 --reps 10 --peak-tflops "$peak" \
    --ours "${OURS:-default}" --out "$OUT/variants_gpu.md"
# torch 2.11's inductor trips an assertion in its coalescing analysis on our training graph.
export TORCHINDUCTOR_COALESCE_TILING_ANALYSIS=0
# One stage per compiled variant, so that a slow compile of one cannot take the others' rows.
declare -A BATCH=([base]=32 [hr]=2 [large]=2)
for v in ${COMPILED_VARIANTS:-base hr}; do
    ours="COMPILED_OURS_$v"  # per variant, e.g. COMPILED_OURS_hr=default,sdpa
    stage "compiled_$v" ${COMPILED_LIMIT:-200} $PY benchmarks/bench_model.py --suite variants \
        --device cuda --variants "$v" --batch "${BATCH[$v]}" --reps 6 --peak-tflops "$peak" \
        --compile --compiled-ours "${!ours:-${COMPILED_OURS:-default}}" \
        --out "$OUT/variants_gpu_compiled_$v.md"
done
stage profile_compiled 100 $PY benchmarks/profile_step.py --what train --device cuda --batch 32 \
    --rows 30 --compile --no-peer
stage attention_compiled 150 $PY benchmarks/bench_model.py --suite attention --device cuda \
    --batch 32 --reps 10 --compile --out "$OUT/attention_gpu_compiled.md"
# The short-group kernel: its CUDA tests; the layer alone, kernel off and on with 1-8 warps;
# then base compiled without the kernel (default: the library keeps it out of compiled graphs)
# and with it at short_groups.warps()' choice (kernel), and base and HR eager without it
# (nokernel), with it at short_groups.warps()' choice (default) and at 1-8 warps (kernelN), each
# in the same run. The compiled stage goes before the eager one: the 45% target is read from it.
stage short_tests ${SHORT_TESTS_LIMIT:-90} $PY -m pytest tests/gpu -q -p no:cacheprovider \
    -k short_group
stage short_bench ${SHORT_BENCH_LIMIT:-90} $PY benchmarks/bench_short_groups.py \
    --out "$OUT/short_groups_gpu.md"
stage short_compiled ${SHORT_COMPILED_LIMIT:-240} $PY benchmarks/bench_model.py --suite variants \
    --device cuda --variants base --batch 32 --reps 6 --peak-tflops "$peak" --compile \
    --compiled-ours default,kernel --out "$OUT/variants_gpu_compiled_short.md"
stage short_variants ${SHORT_VARIANTS_LIMIT:-150} $PY benchmarks/bench_model.py --suite variants \
    --device cuda --variants base,hr --batch base=32,hr=2 --reps 10 --peak-tflops "$peak" \
    --ours "${SHORT_OURS:-nokernel,default,kernel1,kernel2,kernel4,kernel8}" \
    --out "$OUT/variants_gpu_short.md"
stage profile 90 $PY benchmarks/profile_step.py --what train --device cuda --batch 32 --rows 25
# Only when named, for the 45% target: base's training step compiled with inductor's autotuned
# matrix-product templates, into which it can fuse the bias and GELU epilogues (the compiled
# profile puts the rest of the gap in element-wise and norm kernels). Autotuning takes more
# than a lease's call: in 330 s it timed 15 products, and cuBLAS beat inductor's templates at
# every large one (results/compiled_autotune_gpu.md), so it is not worth a lease's time.
stage compiled_autotune ${AUTOTUNE_LIMIT:-500} $PY benchmarks/bench_model.py --suite variants \
    --device cuda --variants base --batch 32 --reps 6 --peak-tflops "$peak" --compile \
    --compile-mode max-autotune-no-cudagraphs --compiled-ours "${AUTOTUNE_OURS:-default}" \
    --out "$OUT/variants_gpu_compiled_autotune.md"
