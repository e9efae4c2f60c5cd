"""Command line: ``python -m benchmarks [speed|memory|startup] [options]``.

Examples (from the repository root):

    python -m benchmarks --quick                 # CPU engines, 3 sizes, about a minute
    python -m benchmarks                         # the full grid, LSTM and GRU
    python -m benchmarks --engines minirnn,torch --cells LSTM --sizes 32x100x128x128
    python -m benchmarks --sizes none --stream-sizes 1x1x32x64   # streaming only
    python -m benchmarks memory                  # peak memory at 64x4000x256x512
    python -m benchmarks startup                 # first call vs second call

Results go to ``<out>/<machine>/<name>.json|.md|.png`` (``--out`` defaults to
benchmarks/results; the machine name comes from the CPU model and core count).
"""

import argparse
import os
import shlex
import sys

from . import cases, engines, report, streaming, system
from .model import DEFAULT_BATCH as DEFAULT_MODEL_BATCH
from .runner import Settings, run_suite

DEFAULT_OUT = os.path.join("benchmarks", "results")


def _list(text, allowed, what):
    items = [item.strip() for item in text.split(",") if item.strip()]
    lookup = {a.lower(): a for a in allowed}
    unknown = [item for item in items if item.lower() not in lookup]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {unknown or text!r}; choose from {', '.join(allowed)}")
    return [lookup[item.lower()] for item in items]


def _engines(text):
    if text.strip().lower() == "all":
        return list(engines.ENGINES)
    if text.strip().lower() == "cpu":
        return list(engines.CPU_ENGINES)
    return _list(text, list(engines.ENGINES), "engine(s)")


def _sizes(text):
    if text.strip().lower() == "none":
        return []
    try:
        return cases.parse_sizes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _stream_sizes(text):
    sizes = _sizes(text)
    for size in sizes:
        try:
            streaming.sequence_size(size)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return sizes


def _bool(text):
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; received {text!r}")


def parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark minirnn against Keras, torch and a GEMM floor; each engine "
                    "in its own fresh process, each output checked before timing.")
    p.add_argument("mode", nargs="?", default="speed", choices=("speed", "memory", "startup"),
                   help="speed (default): the timing grid; memory: peak memory of minirnn "
                        "at a large size; startup: first vs second call in a fresh process")
    p.add_argument("--memory", action="store_const", const="memory", dest="mode_flag",
                   help="same as the mode 'memory'")
    p.add_argument("--startup", action="store_const", const="startup", dest="mode_flag",
                   help="same as the mode 'startup'")
    p.add_argument("--quick", action="store_true",
                   help="a subset in a few minutes: sizes "
                        f"{', '.join(map(cases.size_label, cases.QUICK_SIZES))}, float32, "
                        "and streaming "
                        f"{', '.join(map(cases.size_label, streaming.QUICK_STREAM_SIZES))}, "
                        "CPU engines, 0.2 s per figure")
    p.add_argument("--engines", type=_engines,
                   help="comma-separated, or 'all' / 'cpu'; available: "
                        + ", ".join(engines.ENGINES)
                        + ". Default: all for float32; "
                        + ", ".join(engines.FLOAT64_ENGINES) + " for float64")
    p.add_argument("--cells", type=lambda t: _list(t, list(cases.CELLS), "cell(s)"),
                   help="LSTM,GRU (default both; memory mode: LSTM)")
    p.add_argument("--sizes", type=_sizes,
                   help="BxTxDxM list, e.g. 1x8x2x3,32x100x128x128, or 'none' "
                        "(default: the full grid)")
    p.add_argument("--stream-sizes", type=_stream_sizes,
                   help="streaming case, one timestep per call with the states carried: "
                        "Bx1xDxM list, or 'none' (default: "
                        f"{', '.join(map(cases.size_label, streaming.STREAM_SIZES))}; "
                        f"--quick {', '.join(map(cases.size_label, streaming.QUICK_STREAM_SIZES))}"
                        "; none when --sizes is given)")
    p.add_argument("--stream-steps", type=int, default=streaming.STEPS,
                   help="streaming: calls in the checked sequence, cycled while timing "
                        "(default %(default)s)")
    p.add_argument("--dtype", type=lambda t: _list(t, ["float32", "float64"], "dtype(s)"),
                   help="float32, float64 or float32,float64 (default both; --quick float32)")
    p.add_argument("--return-sequences", type=_bool, default=True, metavar="BOOL",
                   help="the layer's return_sequences (default true)")
    p.add_argument("--repeat-seconds", type=float,
                   help="time spent repeating calls per figure (default 1.0; --quick 0.2)")
    p.add_argument("--min-samples", type=int,
                   help="at least this many timed samples per figure (default 5; --quick 3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole grid this many times, engines interleaved, and keep "
                        "each figure's lowest median (default 1)")
    p.add_argument("--timeout", type=float, default=1200.0,
                   help="seconds one engine process may run before it is stopped")
    p.add_argument("--threads", type=int,
                   help="cap every engine's thread pools at N (sets OMP_NUM_THREADS, "
                        "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS, "
                        "TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS and "
                        "MINIRNN_BENCH_THREADS, which sets ONNX Runtime's intra/inter-op and "
                        "OpenVINO's inference threads, for the engine processes only); "
                        "default: each library's own default")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="output folder; results go to OUT/<machine>/ (default %(default)s)")
    p.add_argument("--name", help="file name stem of the results (default: quick, full, "
                                  "custom, memory or startup)")
    p.add_argument("--runs", type=int, default=3,
                   help="startup mode: fresh processes per cell with a warm cache")
    p.add_argument("--model", metavar="PATH",
                   help="time a saved model (.keras file or folder, .h5): minirnn's "
                        "Model.predict against Keras' model.predict and its model in a "
                        "tf.function (tf-keras for Keras 2 files), each in its own process")
    p.add_argument("--input", metavar="X",
                   help="with --model: X.npy or X.npz (arrays by input name or in order); "
                        "default: the model's example inputs")
    p.add_argument("--batch", type=int,
                   help=f"with --model: batch size of the example inputs (default "
                        f"{DEFAULT_MODEL_BATCH})")
    p.add_argument("--timesteps", type=int,
                   help="with --model: timesteps of the example inputs where the model "
                        "does not fix them")
    return p


def command_line(argv):
    """The command as typed, for the record."""
    return "python -m benchmarks" + ("" if not argv else " " + shlex.join(argv))


def speed_settings(args):
    """Settings for a speed run from the parsed arguments (defaults filled in)."""
    quick = args.quick
    dtypes = args.dtype or (["float32"] if quick else ["float32", "float64"])
    if args.engines:
        engines_by_dtype = {dtype: list(args.engines) for dtype in dtypes}
    else:
        float32 = list(engines.CPU_ENGINES if quick else engines.ENGINES)
        float64 = [name for name in float32 if name in engines.FLOAT64_ENGINES]
        engines_by_dtype = {"float32": float32, "float64": float64}
        engines_by_dtype = {dtype: engines_by_dtype[dtype] for dtype in dtypes}
    if args.stream_steps < 1:
        raise SystemExit(f"--stream-steps must be at least 1; received {args.stream_steps}")
    if args.stream_sizes is not None:
        stream_sizes = args.stream_sizes
    elif args.sizes is not None:
        stream_sizes = []
    else:
        stream_sizes = list(streaming.QUICK_STREAM_SIZES if quick else streaming.STREAM_SIZES)
    sizes = args.sizes if args.sizes is not None else list(
        cases.QUICK_SIZES if quick else cases.FULL_SIZES)
    if not sizes and not stream_sizes:
        raise SystemExit("nothing to run: --sizes none and no --stream-sizes")
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1; received {args.rounds}")
    return Settings(
        cells=args.cells or list(cases.CELLS),
        sizes=sizes,
        stream_sizes=stream_sizes,
        stream_steps=args.stream_steps,
        dtypes=dtypes,
        engines_by_dtype=engines_by_dtype,
        return_sequences=args.return_sequences,
        repeat_seconds=args.repeat_seconds or (0.2 if quick else 1.0),
        min_samples=args.min_samples or (3 if quick else 5),
        timeout_seconds=args.timeout,
        threads=args.threads,
        rounds=args.rounds,
    )


def default_name(args):
    if args.name:
        return args.name
    if args.quick:
        return "quick"
    selections = (args.engines, args.cells, args.sizes, args.stream_sizes, args.dtype,
                  args.repeat_seconds, args.min_samples, args.threads)
    if (any(selection is not None for selection in selections) or not args.return_sequences
            or args.stream_steps != streaming.STEPS):
        return "custom"
    return "full"


def model_main(args):
    """python -m benchmarks --model PATH: the table, printed."""
    from . import model
    for path in (args.model, args.input):
        if path and not os.path.exists(path):
            print(f"python -m benchmarks: error: {path!r}: no such file or folder",
                  file=sys.stderr)
            return 2
    chosen = args.engines or list(model.ENGINES)
    others = [name for name in chosen if name not in model.ENGINES]
    if others:
        print(f"python -m benchmarks: error: --engines {','.join(others)} cannot run a saved "
              f"model; with --model choose from {', '.join(model.ENGINES)}", file=sys.stderr)
        return 2
    try:
        results = model.run(args, engines=chosen)
    except ValueError as error:  # a model or input file minirnn refuses
        print(f"python -m benchmarks: error: {error}", file=sys.stderr)
        return 2
    print(model.table(results))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    mode = args.mode_flag or args.mode
    if args.model:
        return model_main(args)
    command = command_line(argv)
    machine = system.machine_info()
    if mode == "memory":
        from . import memory
        results = memory.run(args, machine, command)
        paths = memory.write(results, args.out, args.name or "memory")
    elif mode == "startup":
        from . import startup
        results = startup.run(args, machine, command)
        paths = startup.write(results, args.out, args.name or "startup")
    else:
        results = run_suite(speed_settings(args))
        results = {"command": command, "argv": argv, "machine": machine, **results}
        paths = report.write_speed(results, args.out, default_name(args))
    with open(paths["markdown"]) as handle:
        print(handle.read())
    for kind, path in paths.items():
        print(f"{kind}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
