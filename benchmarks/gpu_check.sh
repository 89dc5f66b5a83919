#!/usr/bin/env bash
# Every GPU check in one go, in stages, each with its own time limit so that a slow one cannot
# take the others' results. Logs and tables go to $OUT; each table starts with the command that
# makes it, and replaces the file of the same name in benchmarks/results/.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh                        # the default stages
#   STAGES="cuda_tests profile" OUT=/tmp/gpu bash benchmarks/gpu_check.sh   # some stages only
#   STAGES=compiled_hr COMPILED_VARIANTS=hr COMPILED_OURS_hr=nokernel,default OUT=... bash ...
#
# Stages (default: cuda_tests attention variants compiled_base compiled_hr profile_compiled):
#   cuda_tests          tests/gpu (about 180 s)
#   attention           bench_model.py --suite attention: SDPA's kernels against the plain path
#   variants            bench_variants.py: base, HR and large against the peer, eager, with and
#                       without the short-group kernel ($OURS)
#   compiled_<variant>  bench_variants.py --compile, one stage per variant in $COMPILED_VARIANTS
#                       (a fresh machine compiles base's two settings in about 200 s)
#   profile_compiled    profile_step.py: operators of base's compiled training step
#   profile             profile_step.py: ours and the peer, eager
#   attention_compiled  (only when named) the attention suite with the compiled plain path
#   short_tests         (only when named) the short-group kernel's CUDA tests alone
#
# PyAV and OmegaConf, if missing there, travel as wheels in .whl/ (installed to /tmp/site).
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

STAGES=${STAGES:-cuda_tests attention variants compiled_base compiled_hr profile_compiled}
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
stage short_tests ${SHORT_TESTS_LIMIT:-90} $PY -m pytest tests/gpu -q -p no:cacheprovider \
    -k short_group
stage attention 90 $PY benchmarks/bench_model.py --suite attention --device cuda --batch 32 \
    --reps 10 --out "$OUT/attention_gpu.md"
stage attention_compiled 150 $PY benchmarks/bench_model.py --suite attention --device cuda \
    --batch 32 --reps 10 --compile --out "$OUT/attention_gpu_compiled.md"
stage variants ${VARIANTS_LIMIT:-200} $PY benchmarks/bench_variants.py \
    --variants base,hr,large --batch base=32,hr=2,large=2 --reps 10 --peak-tflops "$peak" \
    --ours "${OURS:-nokernel,default}" --out "$OUT/variants_gpu.md"
# torch 2.11's inductor trips an assertion in its coalescing analysis on our training graph.
export TORCHINDUCTOR_COALESCE_TILING_ANALYSIS=0
# One stage per compiled variant, so that a slow compile of one cannot take the others' rows.
declare -A BATCH=([base]=32 [hr]=2 [large]=2)
for v in ${COMPILED_VARIANTS:-base hr}; do
    # Base with and without the short-group kernel (variants_gpu_compiled.md), the others with
    # the library's setting (variants_gpu_compiled_hr.md, ...); per variant: COMPILED_OURS_hr=...
    if [[ $v == base ]]; then table=variants_gpu_compiled.md ours=nokernel,default
    else table=variants_gpu_compiled_$v.md ours=default; fi
    given="COMPILED_OURS_$v"
    stage "compiled_$v" ${COMPILED_LIMIT:-240} $PY benchmarks/bench_variants.py \
        --variants "$v" --batch "$v=${BATCH[$v]}" --reps 6 --peak-tflops "$peak" --compile \
        --compiled-ours "${!given:-${COMPILED_OURS:-$ours}}" --out "$OUT/$table"
done
stage profile_compiled 100 $PY benchmarks/profile_step.py --what train --device cuda --batch 32 \
    --rows 30 --compile --no-peer --out "$OUT/profile_train_gpu_compiled.txt"
stage profile 90 $PY benchmarks/profile_step.py --what train --device cuda --batch 32 --rows 25 \
    --out "$OUT/profile_train_gpu.txt"
