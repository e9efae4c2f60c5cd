"""minirnn verify --bitwise: random float32 configurations in the bitwise mode;
per case, whether minirnn's bits equal Keras' and how many elements differ.

May use: numpy, :mod:`minirnn`, :mod:`minirnn.bitwise` and its own modules.
"""

import numpy as np

from .. import __version__
from .common import FAIL, FAILED, OK, UNAVAILABLE
from .progress import ProgressBar
from .tables import format_table, sci, write_json
from .cases import case_description, keras_and_cases, layer_label

__all__ = ["run", "run_verify_bitwise_cases"]


def _bitwise_row(record):
    case = record["case"]
    sizes = f"B={case['B']} T={case['T']} D={case['D']} M={case['M']}"
    options = [f"{name}={case[name]}" for name in ("mask", "go_backwards", "stateful",
                                                    "initial_state")
               if case[name] not in (False, "none")]
    if not case["use_bias"]:
        options.append("use_bias=False")
    if case["wrapper"] == "bidirectional":
        options.insert(0, f"merge_mode={case['merge_mode']}")
    if case["kind"] == "SimpleRNN":
        if case["activation"] != "tanh":
            options.append(f"activation={case['activation']}")
    elif case["activation"] != "tanh" or case["recurrent_activation"] != "sigmoid":
        options.append(f"{case['activation']}/{case['recurrent_activation']}")
    if record["status"] == "error":
        verdict = f"error: {record['error']}"
    elif record["identical"]:
        verdict = f"identical ({record['total']} elements)"
    else:
        verdict = (f"DIFFERENT: {record['differing']} of {record['total']} elements, "
                   f"max abs {sci(record['max_abs'])}")
    return [record["index"], layer_label(case), sizes, " ".join(options) or "-", verdict]


def run_verify_bitwise_cases(cases_module, count, seed, progress=None):
    """Draw ``count`` bitwise cases from ``seed``; run each; a list of records."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        case = cases_module.random_bitwise_case(rng)
        try:
            result = {"status": "ok", **cases_module.run_bitwise_case(case)}
        except Exception as error:  # a crash is reported as a failure, not raised
            result = {"status": "error", "error": f"{type(error).__name__}: {error}",
                      "identical": False, "differing": None, "total": None, "max_abs": None}
        records.append({"index": index, "case": case, **result})
        if progress is not None:
            bad = sum(not r["identical"] for r in records)
            progress.update(index + 1, f" {bad} not identical")
    return records


def run(args):
    """minirnn verify --bitwise: random float32 configurations, bits compared."""
    from ..bitwise import bitwise_support
    support = bitwise_support()
    print(support)
    if not support:
        print("minirnn verify --bitwise needs a platform the bitwise mode models.")
        return UNAVAILABLE
    keras, cases_module = keras_and_cases()
    if keras is None:
        return UNAVAILABLE
    print(f"\nminirnn verify --bitwise: {args.cases} random float32 configurations (--seed "
          f"{args.seed}), each run in minirnn (bitwise=True) and Keras {keras.__version__}; "
          "every output and state compared bit for bit")
    progress = ProgressBar(args.cases)
    records = run_verify_bitwise_cases(cases_module, args.cases, args.seed, progress)
    progress.close()
    print()
    print(format_table(["case", "layer", "sizes", "options", "result"],
                       [_bitwise_row(r) for r in records], "rllll"))
    groups = {}
    for record in records:
        groups.setdefault(layer_label(record["case"]), []).append(record)
    rows = [[label, len(members), sum(r["identical"] for r in members),
             sum(not r["identical"] for r in members),
             sum(r["differing"] or 0 for r in members), sum(r["total"] or 0 for r in members)]
            for label, members in sorted(groups.items())]
    print()
    print(format_table(["layer", "cases", "identical", "different", "differing elements",
                        "elements"], rows, "lrrrrr"))
    if args.json:
        report = {"command": "minirnn verify --bitwise", "seed": args.seed,
                  "cases": args.cases, "keras_version": keras.__version__,
                  "minirnn_version": __version__, "platform": support.details,
                  "results": records}
        write_json(args.json, report)
        print(f"\nWrote every case and result to {args.json}")
    different = [r for r in records if not r["identical"]]
    for record in different:
        print(f"\n{FAIL} case {record['index']}: {case_description(record['case'])}")
        print(f"  rerun: python -c \"from {cases_module.__name__} import run_bitwise_case; "
              f"print(run_bitwise_case({record['case']!r}))\"")
    identical = len(records) - len(different)
    elements = sum(r["total"] or 0 for r in records)
    print(f"\nResult: {identical} of {len(records)} cases identical bit for bit "
          f"({elements} elements compared).")
    return FAILED if different else OK


