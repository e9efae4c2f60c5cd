#!/usr/bin/env bash
# The GPU benchmark: minirnn (CPU, Numba) against torch-cudnn and keras-cudnn on a CUDA GPU.
#
#   bash benchmarks/gpu.sh            # from the repository root
#
# For a machine with python3, torch (CUDA, cuDNN), numpy, numba, scipy, h5py and Keras'
# other dependencies (absl-py, rich, ml-dtypes, packaging) installed, but no TensorFlow,
# no Keras and no package index. Keras 3 and the two dependencies such machines lack
# (namex, optree) come as wheels in .whl/ (python3 -m pip download --no-deps
# keras==3.15.1 namex==0.1.0 optree==0.20.0 for the machine's Python; WHEELS names
# another folder); they are installed into $SITE (default /tmp/site), put first on
# PYTHONPATH. keras-cudnn then runs on Keras' torch backend (KERAS_BACKEND=torch,
# cuDNN through torch).
#
# Runs the full default grid (LSTM and GRU; float32 and float64; 5 sizes and the 2
# streaming sizes) with --repeat-seconds ${REPEAT:-0.4}: a few minutes. The results go to
# benchmarks/results/<machine>/${NAME:-gpu}.json|.md, and are copied with the log to
# $OUT (default /tmp/minirnn-gpu-out) for machines that hand back only that folder.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/minirnn-gpu-out}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whl}
NAME=${NAME:-gpu}
REPEAT=${REPEAT:-0.4}
ENGINES=${ENGINES:-minirnn,torch-cudnn,keras-cudnn}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export KERAS_BACKEND=${KERAS_BACKEND:-torch}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

main() {
    echo "== wheels: $WHEELS/*.whl -> $SITE"
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    if ((${#wheels[@]})); then
        ls -l "${wheels[@]}"
        if python3 -m pip --version >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target "$SITE" "${wheels[@]}" || echo "pip install failed ($?)"
        else  # no pip: a wheel is a zip of the installed files
            echo "no pip: unpacking the wheels into $SITE"
            for wheel in "${wheels[@]}"; do python3 -m zipfile -e "$wheel" "$SITE"; done
        fi
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "no wheels in $WHEELS/: using the installed packages"
    fi

    echo "== machine"
    nvidia-smi -L || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || true
    echo "CPUs: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    python3 - <<'EOF'
import platform
from importlib import metadata
print("python", platform.python_version(), platform.machine())
for name in ("numpy", "scipy", "numba", "llvmlite", "torch", "keras", "namex", "optree",
             "h5py", "ml-dtypes", "absl-py", "rich", "packaging", "typing-extensions",
             "tensorflow", "tensorflow-cpu"):
    try:
        print(f"  {name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"  {name}: not installed")
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN",
      torch.backends.cudnn.version(), "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    for index in range(torch.cuda.device_count()):
        print(f"  cuda:{index}", torch.cuda.get_device_name(index),
              torch.cuda.get_device_capability(index))
import numba
print("numba", numba.__version__, "threads", numba.config.NUMBA_NUM_THREADS)
EOF

    echo "== benchmarks (KERAS_BACKEND=$KERAS_BACKEND)"
    python3 -m benchmarks --engines "$ENGINES" --dtype float32,float64 \
        --repeat-seconds "$REPEAT" --min-samples 5 --timeout 120 --name "$NAME" "$@"
    status=$?
    machine=$(python3 -c "from benchmarks import system; print(system.machine_name())")
    folder=benchmarks/results/$machine
    cp -v "$folder/$NAME.json" "$folder/$NAME.md" "$OUT/" || true
    echo "== exit status $status"
    return $status
}

main "$@" 2>&1 | tee "$OUT/log"
