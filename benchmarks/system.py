"""What machine and software a figure was measured on.

Nothing here imports TensorFlow, torch or Numba: the parent process stays light,
and library versions come from the installed packages' metadata. The thread
settings that only a loaded library can tell (torch.get_num_threads(), TF's
intra/inter-op pools, Numba's threads, the BLAS pools) are recorded by each
engine's own process (see :func:`runtime_threads`).
"""

import datetime
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata

# Environment variables that change how many threads a library uses, which kernels
# it picks, or which Keras backend and device run. Recorded as found; the harness
# never sets or unsets them.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND", "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME", "KMP_AFFINITY",
    "MKL_NUM_THREADS", "MKL_DYNAMIC", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
    "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT",
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS",
    "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE",
    "KERAS_BACKEND", "KERAS_TORCH_DEVICE", "MINIRNN_BENCH_THREADS",
)

# Set by --threads N for the engine processes. Read by the engines whose thread
# count no environment variable sets (ONNX Runtime's intra_op_num_threads,
# OpenVINO's INFERENCE_NUM_THREADS); see :func:`thread_cap`.
THREADS_VAR = "MINIRNN_BENCH_THREADS"
CAPPED_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                      "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                      THREADS_VAR)

PACKAGES = ("numpy", "scipy", "numba", "llvmlite", "tensorflow", "tensorflow-cpu", "keras",
            "torch", "onnx", "onnxruntime", "openvino", "matplotlib", "threadpoolctl")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_flags():
    """The vector-instruction flags of interest that /proc/cpuinfo lists."""
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
              "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "neon",
              "asimd", "sve")
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("flags", "features")):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def cpu_id():
    """Vendor, family, model and stepping from /proc/cpuinfo ({} elsewhere).

    The model name alone can be generic ("Intel(R) Xeon(R) Processor" on cloud
    machines); family and model numbers tell the generations apart.
    """
    wanted = {"vendor_id": "vendor", "cpu family": "family", "model": "model",
              "stepping": "stepping"}
    found = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                if key.strip() in wanted:
                    found[wanted[key.strip()]] = value.strip()
    except OSError:
        pass
    return found


def core_count():
    """Logical CPUs this process may run on (affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes():
    """Total physical memory in bytes, or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_name():
    """A folder name for this machine: CPU model plus core count, sanitized.

    E.g. "AMD EPYC" with 2 cores gives "amd-epyc-2c"; "Intel(R) Xeon(R) Platinum
    8375C CPU @ 2.90GHz" with 8 cores gives "intel-xeon-platinum-8375c-8c".
    """
    model = cpu_model()
    model = re.sub(r"\((r|tm|c)\)", " ", model, flags=re.IGNORECASE)
    model = re.sub(r"@.*$", " ", model)
    model = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", model, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "unknown-cpu"
    if slug == "intel-xeon":  # a virtual machine's generic name: say which generation
        ident = cpu_id()
        generation = _INTEL_GENERATIONS.get((ident.get("family"), ident.get("model")))
        if generation is None and ident.get("model"):
            generation = f"family{ident.get('family')}-model{ident.get('model')}"
        if generation:
            slug = f"{slug}-{generation}"
    return f"{slug}-{core_count()}c"


# Intel family 6 model numbers of server generations that report a generic name
# ("Intel(R) Xeon(R) Processor") in virtual machines.
_INTEL_GENERATIONS = {
    ("6", "85"): "skylake-cascade-lake", ("6", "106"): "ice-lake",
    ("6", "143"): "sapphire-rapids", ("6", "207"): "emerald-rapids",
    ("6", "173"): "granite-rapids",
}


def gpu_info():
    """The NVIDIA GPUs nvidia-smi lists: [{name, driver, memory_mib, ...}], [] where none.

    Read from nvidia-smi so that the parent process imports no CUDA library; the
    GPU engines' own processes add what torch or TensorFlow saw (device name,
    CUDA and cuDNN versions) to their variant info.
    """
    import shutil
    if not shutil.which("nvidia-smi"):
        return []
    fields = ("name", "driver_version", "memory.total", "compute_cap", "uuid")
    for wanted in (fields, fields[:3]):  # older drivers know no compute_cap
        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=" + ",".join(wanted),
                                   "--format=csv,noheader,nounits"], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return []
        if done.returncode == 0:
            break
    else:
        return []
    gpus = []
    for line in done.stdout.strip().splitlines():
        values = [value.strip() for value in line.split(",")]
        if len(values) != len(wanted):
            continue
        gpu = dict(zip(("name", "driver", "memory_mib", "compute_capability", "uuid"),
                       values))
        gpu.pop("uuid", None)  # identifies one card: not needed in a report
        try:
            gpu["memory_mib"] = int(float(gpu["memory_mib"]))
        except (KeyError, ValueError):
            pass
        gpus.append(gpu)
    return gpus


def versions():
    """Installed versions of the libraries the harness may use (None if absent)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        sys.path.insert(0, REPO_ROOT)
        from minirnn import __version__ as minirnn_version
        found["minirnn"] = minirnn_version
    except Exception:  # noqa: BLE001 - a broken checkout still gets a report
        found["minirnn"] = None
    finally:
        sys.path.pop(0)
    return found


def git_revision():
    """The repository's commit and whether the working tree has changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "dirty": dirty}


def thread_env():
    """The thread-related environment variables, as set (unset ones omitted)."""
    return {name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ}


def _cpu_times():
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


class LoadMeter:
    """CPU share taken by other programs while a child process ran.

    (all CPUs' busy time - the children's own CPU time) / (wall time x CPUs),
    from /proc/stat and getrusage(RUSAGE_CHILDREN); None where unavailable.
    """

    def __enter__(self):
        self.fraction = None
        try:
            self._start = (time.perf_counter(), _cpu_times(), _children_cpu())
        except (OSError, ValueError, IndexError):
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is None:
            return False
        try:
            wall0, (total0, idle0), child0 = self._start
            wall = time.perf_counter() - wall0
            total1, idle1 = _cpu_times()
            ticks = os.sysconf("SC_CLK_TCK")
            busy = ((total1 - total0) - (idle1 - idle0)) / ticks
            others = busy - (_children_cpu() - child0)
            cpus = os.cpu_count() or 1
            self.fraction = round(min(max(others / (wall * cpus), 0.0), 1.0), 3)
        except (OSError, ValueError, IndexError, ZeroDivisionError):
            pass
        return False


def _children_cpu():
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def background_load(seconds=1.0):
    """What else keeps the CPUs busy: {busy_fraction, loadavg} over ``seconds``.

    This process sleeps meanwhile, so busy_fraction (0..1 of all CPUs) is other
    work: another program on the machine makes every figure slower and noisier,
    multithreaded ones most (a thread pool waits for its slowest thread).
    """
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
        with open("/proc/loadavg") as handle:
            loadavg = [float(v) for v in handle.read().split()[:3]]
    except (OSError, ValueError, IndexError):
        return None
    total = max(total1 - total0, 1)
    return {"busy_fraction": round(1.0 - (idle1 - idle0) / total, 3), "loadavg": loadavg,
            "sampled_seconds": seconds}


def child_env(threads=None):
    """The environment for an engine's process; with ``threads``, every pool capped."""
    env = dict(os.environ)
    if threads:
        for name in CAPPED_THREAD_VARS:
            env[name] = str(threads)
    return env


def thread_cap():
    """The --threads cap of this engine process (int), or None: each library's default."""
    text = os.environ.get(THREADS_VAR, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{THREADS_VAR}={text!r} must be a positive integer") from None
    if value < 1:
        raise ValueError(f"{THREADS_VAR}={text!r} must be a positive integer")
    return value


def machine_info():
    """Everything about the machine and software that goes into a report."""
    return {
        "machine_name": machine_name(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_id": cpu_id(),
        "cores": core_count(),
        "os_cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "gpus": gpu_info(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "versions": versions(),
        "git": git_revision(),
        "thread_env": thread_env(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def runtime_threads(loaded=()):
    """Thread settings as the libraries loaded in this process report them.

    Called inside an engine's process after it has built its model; only the
    libraries already imported are asked (asking would import the others).
    """
    info = {"env": thread_env()}
    # A None entry in sys.modules is an import that was blocked, not a library.
    modules = {name: module for name, module in sys.modules.items() if module is not None}
    if "torch" in modules or "torch" in loaded:
        torch = modules["torch"]
        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_num_interop_threads"] = torch.get_num_interop_threads()
    if "tensorflow" in modules or "tensorflow" in loaded:
        tf = modules["tensorflow"]
        # 0 means "TensorFlow's default": a pool as large as the machine's cores.
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    if "numba" in modules:
        numba = modules["numba"]
        info["numba_num_threads"] = numba.get_num_threads()
        info["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    try:
        import threadpoolctl
        info["threadpools"] = [
            {key: pool.get(key) for key in
             ("user_api", "internal_api", "num_threads", "version", "architecture",
              "threading_layer", "filepath")}
            for pool in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info
