"""minirnn verify: random configurations over the whole argument space (the
property tests' generator), each run in minirnn and Keras; the worst errors by
layer and by argument value. ``--bitwise`` is in :mod:`.verify_bitwise`.

May use: numpy, :mod:`minirnn` and its own modules.
"""

import numpy as np

from .. import __version__
from . import keras_support
from .arguments import input_file, model_path, non_negative_int, output_file, positive_int
from .cases import case_description, keras_and_cases, layer_label
from .common import FAIL, FAILED, OK, UNAVAILABLE, CommandError
from .progress import ProgressBar
from .tables import format_table, sci, write_json

__all__ = ["add_parser", "run", "run_verify_cases", "verify_tables", "layer_label",
           "argument_labels", "divergent_pass", "case_description"]

# The arguments whose values get a row each in the "by argument" table.
_VERIFY_ARGUMENTS = ("dtype", "use_bias", "return_sequences", "return_state", "go_backwards",
                     "stateful", "zero_output_for_mask", "mask", "initial_state", "merge_mode")

STATUS_TEXT = """\
  pass             every output within tolerance: |minirnn - Keras| <= atol + rtol |Keras|
                   (float32: {float32}; float64: {float64}).
  ill-conditioned  outside the tolerance, but not minirnn's fault: the recurrence amplifies
                   rounding (unbounded activations, exploding states), so much that Keras'
                   own float32 result lies as far from its float64 result. minirnn's error is
                   within 4x of what that amplification predicts for the case's dtype.
  fail             outside the tolerance and not explained by the amplification: a bug.
  ulp              the error in units in the last place of Keras' value; near zero one ulp
                   is tiny, so a large ulp count there can still be a tiny absolute error."""



def argument_labels(case):
    """The 'argument=value' rows of the by-argument table that a case belongs to."""
    labels = []
    for name in _VERIFY_ARGUMENTS:
        if name == "merge_mode" and case["wrapper"] != "bidirectional":
            continue
        labels.append(f"{name}={case[name]}")
    labels.append("activation=tanh" if case["activation"] == "tanh"
                  else "activation=other")
    if case["kind"] != "SimpleRNN":
        labels.append("recurrent_activation=sigmoid" if case["recurrent_activation"]
                      == "sigmoid" else "recurrent_activation=other")
    return labels


def divergent_pass(record, tolerances, bound):
    """Whether a passing case must have outputs beyond ``bound`` in magnitude.

    A pass means |error| <= atol + rtol |Keras|, so an error above
    atol + rtol * bound can only pass where |Keras| > bound: a divergent
    recurrence, whose large absolute error is small relative to its values.
    """
    if record["status"] != "pass" or record["max_abs"] is None:
        return False
    atol, rtol = tolerances[record["case"]["dtype"]]
    return record["max_abs"] > atol + rtol * bound


def _worst(records, field):
    """The record with the largest ``field``, or None."""
    records = [r for r in records if r[field] is not None]
    return max(records, key=lambda r: r[field], default=None)


def _group_rows(records, key, divergent):
    """Table rows: per group, counts by status and the worst passing errors by dtype.

    ``divergent(record)`` marks a worst absolute error with '*' (see
    :func:`divergent_pass`).
    """
    groups = {}
    for record in records:
        for label in key(record["case"]):
            groups.setdefault(label, []).append(record)
    rows = []
    for label, members in groups.items():
        count = lambda status: sum(r["status"] == status for r in members)
        row = [label, len(members), count("pass"), count("ill-conditioned"),
               count("fail") + count("error")]
        for dtype in ("float32", "float64"):
            passing = [r for r in members
                       if r["status"] == "pass" and r["case"]["dtype"] == dtype]
            worst_abs, worst_ulp = _worst(passing, "max_abs"), _worst(passing, "max_ulp")
            abs_text = "-" if worst_abs is None else sci(worst_abs["max_abs"])
            if worst_abs is not None and divergent(worst_abs):
                abs_text += "*"
            row += [abs_text, "-" if worst_ulp is None else f"{worst_ulp['max_ulp']:.0f}"]
        rows.append(row)
    return rows


def verify_tables(records, divergent=lambda record: False):
    """The two summary tables (by layer, by argument value) as text."""
    headers = ["", "cases", "pass", "ill-cond.", "fail",
               "f32 max abs", "f32 ulp", "f64 max abs", "f64 ulp"]
    align = "lrrrrrrrr"
    by_layer = _group_rows(records, lambda case: [layer_label(case)], divergent)
    order = {label: k for k, label in enumerate(
        f"{kind}{suffix}" for kind in ("LSTM", "GRU", "GRU_v1", "SimpleRNN")
        for suffix in ("", " (RNN cell)", " (bidirectional)"))}
    by_layer.sort(key=lambda row: order.get(row[0], len(order)))
    by_argument = sorted(_group_rows(records, argument_labels, divergent),
                         key=lambda row: row[0])
    headers_layer = ["layer"] + headers[1:]
    headers_argument = ["argument=value"] + headers[1:]
    return (format_table(headers_layer, by_layer, align),
            format_table(headers_argument, by_argument, align))


def _rerun_snippet(case):
    module = keras_support.reference("cases").__name__
    return (f"python -c \"from {module} import run_case; "
            f"print(run_case({case!r}))\"")


def run_verify_cases(cases_module, count, seed, dtype, progress=None):
    """Draw ``count`` cases from ``seed`` and run each; a list of result records."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        case = cases_module.random_case(rng)
        if dtype != "both":
            case["dtype"] = dtype
        try:
            result = cases_module.run_case(case)
        except Exception as error:  # a crash is reported as a failure, not raised
            result = {"status": "error", "error": f"{type(error).__name__}: {error}",
                      "max_abs": None, "max_ulp": None, "units": None,
                      "amplification": None}
        records.append({"index": index, "case": case, **result})
        if progress is not None:
            bad = sum(r["status"] in ("fail", "error") for r in records)
            ill = sum(r["status"] == "ill-conditioned" for r in records)
            progress.update(index + 1, f" {ill} ill-conditioned, {bad} failed")
    return records


def _print_failure(record, seed):
    case = record["case"]
    print(f"{FAIL} case {record['index']} (the last one of --seed {seed} "
          f"--cases {record['index'] + 1}): {record['status']}")
    print(f"  {case_description(case)}")
    if record["status"] == "error":
        print(f"  raised {record['error']}")
    else:
        print(f"  max abs {sci(record['max_abs'])}, max ulp {record['max_ulp']:.0f}, "
              f"{record['units']:.3g} tolerance units; Keras' own float32-vs-float64 "
              f"amplification {sci(record['amplification'])}")
    print(f"  rerun: {_rerun_snippet(case)}")


def _settle_arguments(args):
    """Refuse the options that do not apply to the chosen mode; fill in defaults."""
    if args.model:
        extra = [f"--{name}" for name in ("cases", "dtype") if getattr(args, name) is not None]
        if extra:
            raise CommandError(f"{' and '.join(extra)} appl{'y' if len(extra) > 1 else 'ies'} "
                               f"to random configurations, not to --model {args.model}")
        return
    if args.input or args.weights:
        raise CommandError(f"{'--input' if args.input else '--weights'} needs --model: "
                           "the inputs or weights of a saved model")
    args.cases = 100 if args.cases is None else args.cases
    args.dtype = "both" if args.dtype is None else args.dtype


def run(args):
    """minirnn verify: random configurations (or a saved model), minirnn against Keras."""
    _settle_arguments(args)
    if args.model:
        from . import verify_model
        return verify_model.run(args)
    if args.bitwise:
        if args.dtype == "float64":
            print("minirnn verify --bitwise compares float32 results; --dtype float64 "
                  "does not apply.")
            return UNAVAILABLE
        from . import verify_bitwise
        return verify_bitwise.run(args)
    keras, cases_module = keras_and_cases()
    if keras is None:
        return UNAVAILABLE
    print(f"minirnn verify: {args.cases} random configurations (--seed {args.seed}, "
          f"dtype {args.dtype}), each run in minirnn and Keras {keras.__version__}")
    progress = ProgressBar(args.cases)
    records = run_verify_cases(cases_module, args.cases, args.seed, args.dtype, progress)
    progress.close()
    statuses = [r["status"] for r in records]
    counts = {s: statuses.count(s) for s in ("pass", "ill-conditioned", "fail", "error")}
    print()
    bound = cases_module.DIVERGENCE_BOUND
    divergent = lambda record: divergent_pass(record, cases_module.TOLERANCES, bound)
    by_layer, by_argument = verify_tables(records, divergent)
    print("By layer (max abs / ulp: the worst errors among passing cases, per dtype):")
    print(by_layer)
    print()
    print("By argument value:")
    print(by_argument)
    if any(divergent(r) for r in records):
        print(f"  * from a divergent recurrence: outputs beyond {bound:g} in magnitude "
              "(unbounded activations),\n    where this absolute error is within the "
              "relative tolerance.")
    print()
    print("What the statuses mean:")
    print(STATUS_TEXT.format(**{dtype: f"{atol:.0e} + {rtol:.0e} |Keras|".replace("e-0", "e-")
                                for dtype, (atol, rtol) in cases_module.TOLERANCES.items()}))
    ill = [r for r in records if r["status"] == "ill-conditioned"]
    if ill:
        print()
        print("Ill-conditioned cases (activation / recurrent_activation, error, Keras' own "
              "amplification):")
        for record in ill[:10]:
            case = record["case"]
            print(f"  case {record['index']:>3}: {layer_label(case)}, {case['dtype']}, "
                  f"{case['activation']} / {case['recurrent_activation']}: max abs "
                  f"{sci(record['max_abs'])}, amplification {sci(record['amplification'])}")
        if len(ill) > 10:
            print(f"  ... and {len(ill) - 10} more (see --json)")
    if args.json:
        report = {"command": "minirnn verify", "seed": args.seed, "cases": args.cases,
                  "dtype": args.dtype, "keras_version": keras.__version__,
                  "minirnn_version": __version__,
                  "tolerances": {k: list(v) for k, v in cases_module.TOLERANCES.items()},
                  "summary": counts, "results": records}
        write_json(args.json, report)
        print(f"\nWrote every case and result to {args.json}")
    failures = [r for r in records if r["status"] in ("fail", "error")]
    print()
    for record in failures:
        _print_failure(record, args.seed)
        print()
    print(f"Result: {counts['pass']} pass, {counts['ill-conditioned']} ill-conditioned, "
          f"{counts['fail'] + counts['error']} fail, of {len(records)} cases.")
    return FAILED if failures else OK



def add_parser(commands):
    parser = commands.add_parser(
        "verify", help="random configurations, or a saved model, compared with Keras",
        description="Draw random configurations over the whole argument space (the "
                    "property tests' generator), run each in minirnn and Keras, and "
                    "report the worst errors by layer and by argument value. With --model, "
                    "run a saved model in minirnn and in Keras and report the worst error "
                    "per output.")
    parser.add_argument("--cases", type=positive_int, default=None,
                        help="how many configurations (default 100)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the configurations, or of a model's example inputs "
                             "(default 0)")
    parser.add_argument("--json", metavar="FILE", type=output_file,
                        help="write every case (or output) and its result")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default=None,
                        help="force a dtype, or draw it per case (both, default)")
    parser.add_argument("--bitwise", action="store_true",
                        help="the bitwise mode: report per case (or output) whether "
                             "minirnn's float32 bits equal Keras' and how many elements "
                             "differ")
    parser.add_argument("--model", metavar="PATH", type=model_path,
                        help="a saved model (.keras file or folder, .h5, SavedModel folder, "
                             "or model.json with --weights): run it in minirnn and in Keras "
                             "(tf-keras for Keras 2 files), each output compared")
    parser.add_argument("--weights", metavar="W.h5", type=input_file, default=None,
                        help="with --model model.json: its weights file (Keras 2 "
                             "save_weights .h5 or Keras 3 .weights.h5)")
    parser.add_argument("--input", metavar="X", type=input_file,
                        help="with --model: X.npy (one input) or X.npz (by input name or in "
                             "order); default: the model's example inputs, padded at the "
                             "end and at the start")
    parser.set_defaults(run=run)
