#!/usr/bin/env bash
# One unattended GPU session, under 9 minutes: verify and time the CUDA path, train the rescaler.
#
# Here, once, to fill the ignored folders that travel with the call (PyAV, training/validation images):
#     .venv/bin/python bench/prepare_gpu_carry.py        # .whl/ 23.5 MiB + .gpu_data/ 28.9 MiB
# On the GPU machine, through the device tool, from the repository root:
#     run(command="bash bench/gpu_session.sh", carry=[".whl", ".gpu_data"], timeout_s=560)
# Rehearsal on a CPU, every step shrunk (a few minutes; OUT defaults to runs/gpu_dry/):
#     bash bench/gpu_session.sh --dry-run
#
# Steps, each timed, bounded by `timeout` and recorded; a step that fails or times out is noted and
# the session goes on:
#   env       GPU, driver, torch, NVENC library; TensorRT is not on that machine (too large to carry):
#             the compiled figure comes from torch.compile (Triton), the engine kind "compile"
#   install   PyAV from .whl/ (a wheel's files repacked as .tar.xz, or a plain .whl): no network
#   pytest    pytest -m needs_cuda                                   -> $OUT/pytest_cuda.xml
#   engines   bench/engines_gpu.py (x2 1080p, x1.5 720p; eager fp32/fp16, CUDA graphs, compiled;
#             model only, processing stage, end to end NVENC or libx264)  -> $OUT/engines_gpu.json
#   shipped   the shipped irn_y weights on Set5/Set14, both z protocols, on the CPU, in the
#             background while the GPU trains
#   train     bench/gpu_train_irn.py: the rescaler, tau = 1, for the time left, then its figures
#             -> $OUT/irn_y_gpu.safetensors, irn_checkpoint.safetensors, irn_figures.json
#   summary   $OUT/summary.json; everything printed is also in $OUT/session.log (7 files in all)
# Exit status: 0 when every step passed.
set -u
set -o pipefail

DRY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (only --dry-run)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
START=$(date +%s)
if (( DRY )); then
    BUDGET=${GPU_SESSION_BUDGET_S:-200}
    OUT=${OUT:-$ROOT/runs/gpu_dry}
    PY=${PYTHON:-$ROOT/.venv/bin/python}
    EVAL_RESERVE=45
else
    BUDGET=${GPU_SESSION_BUDGET_S:-530}   # 9 minutes less a margin for the call's own 560 s limit
    OUT=${OUT:-$ROOT/runs/gpu_session}
    PY=${PYTHON:-python3}
    EVAL_RESERVE=75                        # the new weights' figures on 16 CPU cores, and slack
fi
[[ -x "$PY" ]] || PY=$(command -v "$PY" || command -v python3)
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_session.XXXXXX")
SITE=$WORK/site
DATA=$ROOT/.gpu_data
if [[ ! -d $DATA/T91 && $DRY == 1 && -d $ROOT/../shared/data/T91 ]]; then
    DATA=$ROOT/../shared/data   # a dry run before prepare_gpu_carry.py: the same images, unpacked
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} VSR_PIPE_CACHE=$WORK/cache
export PYTHONDONTWRITEBYTECODE=1
STEPS=$WORK/steps.tsv
: > "$STEPS"

left() { echo $(( START + BUDGET - $(date +%s) )); }

# step NAME LIMIT_S COMMAND...: run with a time limit (cut to the time left), record the outcome.
step() {
    local name=$1 limit=$2 t0 rc status
    shift 2
    local room=$(( $(left) - 5 ))
    (( limit > room )) && limit=$room
    if (( limit < 5 )); then
        printf '%s\tskipped\t\t0\tno time left\n' "$name" >> "$STEPS"
        echo "=== $name: skipped, no time left"
        return 0
    fi
    echo "=== $name (limit ${limit} s, $(( $(date +%s) - START )) s into the session)"
    t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@"
    rc=$?
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) status=ok ;;
        124|137) status="timed out" ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\t\n' "$name" "$status" "$rc" "$secs" >> "$STEPS"
    echo "=== $name: $status (exit $rc, $secs s)"
}

env_report() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); host $(uname -n); $(nproc) CPU cores; dry run: $DRY"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
    else
        echo "nvidia-smi: not here"
    fi
    "$PY" - <<'EOF'
import importlib.util, sys
import torch
cuda = torch.cuda.is_available()
print(f"python {sys.version.split()[0]}; torch {torch.__version__}; CUDA available: {cuda}"
      + (f"; {torch.cuda.get_device_name(0)}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}" if cuda else ""))
for name in ("triton", "onnxruntime", "av", "tensorrt"):
    print(f"{name}: {'present' if importlib.util.find_spec(name) else 'absent'}")
EOF
    echo "TensorRT: not on the GPU machine and too large to carry: no TensorRT figure; the compiled figure is torch.compile (Triton), engine kind 'compile'"
    local enc
    enc=$( (ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnvidia-encode\.so[.0-9]*'; \
            find /usr/local/nvidia /usr/lib/x86_64-linux-gnu -name 'libnvidia-encode.so*' 2>/dev/null) | head -n 1)
    if [[ -n $enc ]]; then
        echo "NVENC library: $enc"
    else
        echo "NVENC library (libnvidia-encode): not found; end to end will use libx264"
    fi
}

install_av() {
    local found=0 archive
    mkdir -p "$SITE"
    for archive in "$ROOT"/.whl/*.tar.xz; do
        [[ -e $archive ]] || continue
        found=1
        echo "unpacking $(basename "$archive") into $SITE"
        "$PY" -c "import sys, tarfile; tar = tarfile.open(sys.argv[1]); \
tar.extractall(sys.argv[2], **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))" "$archive" "$SITE" || return 1
    done
    if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
        found=1
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$ROOT"/.whl/*.whl || return 1
    fi
    if (( ! found )); then
        echo "no .whl/ here: run .venv/bin/python bench/prepare_gpu_carry.py first"
        (( DRY )) && { echo "(dry run: going on with this Python's own PyAV)"; return 0; }
        return 1
    fi
    PYTHONPATH=$SITE:$PYTHONPATH "$PY" -c "import av; print('PyAV', av.__version__, 'from', av.__file__); \
print('NVENC encoders in this FFmpeg:', sorted(c for c in av.codecs_available if 'nvenc' in c))"
}

run_pytest() {
    "$PY" -m pytest -m needs_cuda -q -rs -p no:cacheprovider --junitxml="$OUT/pytest_cuda.xml" tests
}

run_engines() {
    if (( DRY )); then
        echo "(CUDA rows skipped: no CUDA in a dry run; the CPU rows run at 1/4 size)"
        "$PY" bench/engines_gpu.py --small --device cpu --frames 4 --chunk 2 --repeats 1 --json "$OUT/engines_gpu.json"
    else
        "$PY" bench/engines_gpu.py --frames 48 --chunk 4 --repeats 3 --json "$OUT/engines_gpu.json"
    fi
}

session() {
    echo "GPU session: $ROOT -> $OUT (budget $BUDGET s)"
    export ROOT SITE PY DRY OUT
    export -f env_report install_av run_pytest run_engines
    step env 30 bash -c env_report
    # where FFmpeg's NVENC finds the driver's encoder library (env_report ran in a child shell)
    local enc
    enc=$(find /usr/local/nvidia /usr/lib/x86_64-linux-gnu -name 'libnvidia-encode.so*' 2>/dev/null | head -n 1)
    [[ -n $enc ]] && export LD_LIBRARY_PATH=$(dirname "$enc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    step install 60 bash -c install_av
    [[ -d $SITE/av ]] && export PYTHONPATH=$SITE:$PYTHONPATH
    step pytest 120 bash -c run_pytest
    step engines $(( DRY ? 180 : 170 )) bash -c run_engines

    local train_args=() shipped_args=()
    if (( DRY )); then
        # one thread each: the trainer and the background figures share two cores here
        train_args=(--device cpu --batch 4 --lr-patch 12 --max-images 4 --max-steps 30 --sets Set5 --eval-images 1
                    --val-s-estimate 3 --threads 1 --eval-threads 1)
        shipped_args=(--sets Set5 --eval-images 1 --threads 1)
    else
        train_args=(--device cuda --batch 32 --lr-patch 32 --threads 4)
        shipped_args=(--threads 8)
    fi
    local until=$(( START + BUDGET - EVAL_RESERVE - 10 ))
    local shipped_limit=$(( until + EVAL_RESERVE - 10 - $(date +%s) ))
    (( shipped_limit < 5 )) && shipped_limit=5
    echo "=== shipped (background, $shipped_limit s at most)"
    timeout -k 5 "$shipped_limit" "$PY" bench/gpu_train_irn.py shipped --data "$DATA" --json "$WORK/shipped.json" "${shipped_args[@]}" \
        > "$WORK/shipped.log" 2>&1 &
    local shipped_pid=$! t_shipped
    t_shipped=$(date +%s)
    step train $(( until - $(date +%s) + EVAL_RESERVE )) "$PY" bench/gpu_train_irn.py train --data "$DATA" \
        --out "$OUT" --until "$until" --shipped-json "$WORK/shipped.json" --shipped-wait 40 \
        --work "$WORK/irn" "${train_args[@]}"
    wait "$shipped_pid"
    local rc=$?
    cat "$WORK/shipped.log"
    printf 'shipped\t%s\t%s\t%s\t(background, during train)\n' "$([[ $rc == 0 ]] && echo ok || ([[ $rc == 124 || $rc == 137 ]] && echo 'timed out' || echo failed))" \
        "$rc" "$(( $(date +%s) - t_shipped ))" >> "$STEPS"

    echo "=== summary"
    "$PY" - "$OUT" "$STEPS" "$START" "$DRY" "$WORK/shipped.json" <<'EOF'
import json, os, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path

out, steps_file, start, dry, shipped = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1", Path(sys.argv[5])
steps = []
for line in steps_file.read_text().splitlines():
    name, status, rc, secs, note = (line.split("\t") + [""] * 5)[:5]
    steps.append({"step": name, "status": status, "exit": int(rc) if rc else None, "seconds": float(secs or 0), "note": note or None})
summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": dry,
           "seconds": round(time.time() - start, 1), "steps": steps,
           "tensorrt": "not on the GPU machine (too large to carry); compiled figure from torch.compile (Triton)"}
def load(name):
    p = out / name
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except ValueError:
        return None
if (out / "pytest_cuda.xml").exists():
    suite = ET.parse(out / "pytest_cuda.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["pytest"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
eng = load("engines_gpu.json")
if eng:
    summary["engines"] = {"device": eng.get("device"), "goals": eng.get("goals"), "skipped": eng.get("skipped"),
                          "rows": len(eng.get("rows", [])), "e2e": eng.get("e2e")}
irn = load("irn_figures.json")
if irn:
    summary["irn"] = {k: irn.get(k) for k in ("device", "steps_done", "train_seconds", "probe_steps_per_s", "verdict")}
    summary["irn"]["figures"] = irn.get("figures")
if shipped.exists():
    summary["shipped_irn_seconds"] = json.loads(shipped.read_text()).get("seconds")
files = sorted(p.name for p in out.iterdir() if p.is_file())
summary["files"] = files + ["summary.json"] if "summary.json" not in files else files
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(f"{'dry run' if dry else 'session'}: {summary['seconds']} s")
for s in steps:
    print(f"  {s['step']:8s} {s['status']:9s} {s['seconds']:6.1f} s {s['note'] or ''}")
if "pytest" in summary:
    print(f"  pytest -m needs_cuda: {summary['pytest']}")
if eng:
    print(f"  engines: {eng.get('device')}; goals {json.dumps(eng.get('goals'))}")
if irn:
    print(f"  irn: {irn['steps_done']} steps in {irn['train_seconds']} s; beats shipped: "
          + ", ".join(f"{v['protocol']}: {v['beats']}" for v in irn["verdict"].values() if isinstance(v, dict))
          + f"; LR >= 38 dB: {irn['verdict'].get('lr_at_least_38db')}")
if len(summary["files"]) > 8:
    print(f"  WARNING: {len(summary['files'])} files in $OUT; only 8 come back")
EOF
    local failed
    failed=$(awk -F'\t' '$2 == "failed" || $2 == "timed out"' "$STEPS" | wc -l)
    echo "=== done in $(( $(date +%s) - START )) s; steps failed or timed out: $failed"
    rm -rf "$WORK"
    (( failed == 0 ))
}

session 2>&1 | tee "$OUT/session.log"
exit "${PIPESTATUS[0]}"
