#!/usr/bin/env bash
# The GPU measurements that recipes/README.md lacks, as one script sized for a short lease
# of a GPU machine (about 9 minutes by default):
#
#   1. tests: the whole test suite (tests/; the tests marked gpu run on the GPU: no host
#      syncs inside a step, the conv pair's fast path, a model copied to the GPU rather
#      than moved, sampling with labels already on the GPU; the others see no GPU), in 8
#      processes when pytest-xdist is installed, one line per test as it ends, so a run cut
#      off by its limit still names its failures;
#   2. epoch-time: time per epoch of the SVHN and CIFAR-10 recipes on data of their real shape
#      (benchmarks/epoch_time.py, one run per recipe; an estimate from 100 timed steps
#      after 20 untimed ones, torch.compile's warm-up among them, unless EPOCH_TIME_ARGS
#      says --epochs N);
#   3. mnist: the MNIST 100-label recipe (recipes/mnist-100.yaml, seed 0) on the real MNIST, for
#      as many of its epochs as the rest of the budget holds (--time-limit).
#
#   bash benchmarks/gpu_check.sh [DATA_ROOT] [MINUTES]
#   STAGES=mnist bash benchmarks/gpu_check.sh .data 9.8    # the whole MNIST recipe alone
#
# STAGES picks the stages (default "tests epoch-time mnist"). On one H200 the MNIST
# recipe's epochs took 22 to 26 s (the first 44 s, compiling included), so its 20 epochs
# need about 8.5 minutes, more than the default run leaves them: to measure its full error,
# run the mnist stage alone in 9.8 minutes (a 600-second device call), then, on the still
# warm machine, STAGES=tests (about 3 minutes).
# DATA_ROOT holds MNIST/raw/ (the four .gz files are enough; default .data, which git
# ignores, so it can travel to a lent machine), MINUTES is the budget for the whole script
# (default 9). Needs only what ganaug needs (torch, torchvision, numpy, scikit-learn,
# scipy, tqdm, pyyaml, matplotlib) and pytest; ganaug itself is used from this checkout
# (PYTHONPATH), not installed. Results go to $OUT (default runs/gpu-check), at most
# eight files, flat enough for the device tool to bring back:
#   log.txt                               everything printed, the environment first
#   svhn-1000/epoch_time.json, cifar10-4000/epoch_time.json    stage 2's rows
#   mnist/summary.json, metrics.jsonl, config.json, curves.png, samples.png   stage 3's run
# Each stage has its own time limit (cut to what is left of the budget), and a stage that
# fails does not stop the next; the script exits 1 when any stage failed (2: bad input).
# The tests stage points GANAUG_TEST_DATA at DATA_ROOT, so the tests that read the real
# MNIST run there too; only the mnist stage requires MNIST in DATA_ROOT.
# Extra arguments: PYTEST_ARGS, EPOCH_TIME_ARGS, MNIST_ARGS (appended to each stage's
# command line); TESTS_LIMIT (seconds for stage 1, default 170); EPOCH_TIME_RECIPES
# (default "svhn-1000 cifar10-4000"), EPOCH_TIME_LIMIT (seconds per recipe in stage 2,
# default 110); PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."

DATA=${1:-.data}
MINUTES=${2:-9}
OUT=${OUT:-runs/gpu-check}
PY=${PYTHON:-python3}
STAGES=${STAGES:-tests epoch-time mnist}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ -z "${STAGES// /}" ]; then
    echo "gpu_check: STAGES is empty: name one or more of tests, epoch-time, mnist" >&2
    exit 2
fi
for s in $STAGES; do
    case "$s" in
        tests|epoch-time|mnist) ;;
        *) echo "gpu_check: unknown stage '$s' in STAGES: use tests, epoch-time and/or mnist" >&2
           exit 2 ;;
    esac
done
has() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }   # is stage $1 on?
if has mnist; then
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
             t10k-labels-idx1-ubyte; do
        if [ ! -f "$DATA/MNIST/raw/$f" ] && [ ! -f "$DATA/MNIST/raw/$f.gz" ]; then
            echo "gpu_check: $DATA/MNIST/raw/$f(.gz) is missing: copy MNIST's four .gz files" \
                 "there (mkdir -p $DATA/MNIST/raw && cp ROOT/MNIST/raw/*.gz $DATA/MNIST/raw/)," \
                 "or pass the torchvision root that holds them as the first argument" >&2
            exit 2
        fi
    done
fi
if ! awk -v m="$MINUTES" 'BEGIN { exit !(m + 0 >= 3) }'; then
    echo "gpu_check: MINUTES must be a number >= 3 (got '$MINUTES')" >&2
    exit 2
fi

mkdir -p "$OUT"
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ganaug-gpu-check.XXXXXX")
LOG="$OUT/log.txt"
START=$(date +%s)
left_s() { echo $(( $(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }') - ($(date +%s) - START) )); }
stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S), $(left_s) s of the budget left)"; }
# a stage's limit: its own, or what is left of the budget when that is less (at least 1 s)
cap() { local l; l=$(left_s); [ "$l" -lt 1 ] && l=1; echo $(( $1 < l ? $1 : l )); }

{
    fail=0                      # the exit status: 1 when any stage failed
    stage "environment"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c 'import torch, torchvision, platform, os
print("python", platform.python_version(), "torch", torch.__version__, "torchvision",
      torchvision.__version__, "cuda", torch.version.cuda, "cpus", os.cpu_count())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU: the CPU")'
    git log -1 --format='ganaug commit %H %s' 2>/dev/null

    if has tests; then
        lim=$(cap "${TESTS_LIMIT:-170}")
        stage "1. the test suite (limit $lim s)"
        # -v: one line per test as it ends (named even if the limit cuts the run off);
        # no:logging: not the pages of torch's debug log that pytest shows for a failure;
        # 2 threads a process (the processes the tests start too), not 8 x all the cores
        par=$("$PY" -c 'import xdist' 2>/dev/null && echo "-n 8")
        # the tests that read the real MNIST read it from DATA (../shared is not on the device)
        [ -d "$DATA" ] && export GANAUG_TEST_DATA="$(cd "$DATA" && pwd)"
        OMP_NUM_THREADS=2 timeout "$lim" "$PY" -m pytest -v -p no:cacheprovider -p no:logging -rfEs \
            $par tests ${PYTEST_ARGS:-}
        st=$?; echo "pytest exit status $st"; [ "$st" -eq 0 ] || fail=1
    fi

    if has epoch-time; then
        # one process per recipe, so that one that runs out of time leaves the other's row
        for r in ${EPOCH_TIME_RECIPES:-svhn-1000 cifar10-4000}; do
            lim=$(cap "${EPOCH_TIME_LIMIT:-110}")
            stage "2. time per epoch, recipes/$r.yaml (limit $lim s)"
            timeout "$lim" "$PY" benchmarks/epoch_time.py --recipes "$r" \
                --out "$RUN/$r" ${EPOCH_TIME_ARGS:---steps 100 --warmup 20}
            st=$?; echo "epoch_time exit status $st"; [ "$st" -eq 0 ] || fail=1
            if [ -f "$RUN/$r/epoch_time.json" ]; then
                mkdir -p "$OUT/$r" && cp "$RUN/$r/epoch_time.json" "$OUT/$r/"
            fi
        done
    fi

    if has mnist; then
        # the run's own --time-limit stops it after the last epoch that fits (start-up included);
        # the final evaluation and sample grid come on top, hence the margin of 45 s
        limit=$(awk -v s="$(left_s)" 'BEGIN { printf "%.2f", (s - 45) / 60 }')
        stage "3. MNIST 100 labels, recipes/mnist-100.yaml, seed 0 (--time-limit $limit)"
        if awk -v l="$limit" 'BEGIN { exit !(l >= 1) }'; then
            timeout $(( $(left_s) + 30 )) "$PY" -m ganaug train --recipe recipes/mnist-100.yaml \
                --data-root "$DATA" --seed 0 --time-limit "$limit" --no-tensorboard --out "$RUN/mnist" \
                ${MNIST_ARGS:-}
            st=$?; echo "ganaug train exit status $st"; [ "$st" -eq 0 ] || fail=1
            mkdir -p "$OUT/mnist"
            for f in summary.json metrics.jsonl config.json curves.png samples.png; do
                [ -f "$RUN/mnist/$f" ] && cp "$RUN/mnist/$f" "$OUT/mnist/"
            done
            [ -f "$RUN/mnist/metrics.jsonl" ] && "$PY" - "$RUN/mnist/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    acc = r.get("test_accuracy")
    print(f"epoch {r['epoch']:3d}  {r.get('seconds', float('nan')):7.1f} s of training so far, test error "
          + (f"{100 * (1 - acc):.2f}%" if acc is not None else "-"))
EOF
        else
            echo "skipped: less than a minute of the budget left"; fail=1
        fi
    fi
    stage "done"
    [ "$fail" -eq 0 ] || echo "gpu_check: a stage failed (its exit status is above)"
    exit "$fail"
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
rm -rf "$RUN"
exit "$status"
