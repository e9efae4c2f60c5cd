"""The documentation: README.md and docs/*.md say what the code does.

- Every ```python example runs, each in a fresh namespace, in an empty folder. An
  HTML comment just before an example, ``<!-- docs-test setup ... -->`` (hidden on
  GitHub and in the site, plain in the source), holds code that runs first, in the same
  namespace: it makes the files the example reads. An example or set-up that imports
  keras needs the ``keras`` fixture; one that uses tf_keras needs tf-keras; each is
  skipped without them.
- Every ``minirnn ...`` line of a ```bash block parses with the command's own parser,
  and every ``--help`` in docs/cli.md lists exactly the command's options.
- The quick start's test line is what .ci/run runs.
- The generated tables are up to date (``python -m benchmarks.docs --check``).
- Every layer class minirnn loads is in docs/saved-models.md.
- ``mkdocs build --strict`` builds the site, so a broken link or anchor fails, and each
  heading's anchor is the same on GitHub as in the site.
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs"))
                              if name.endswith(".md"))
SETUP = re.compile(r"^<!-- docs-test setup[^\n]*\n(.*?)^-->$", re.S | re.M)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return handle.read()


def line_of(text, position):
    return text.count("\n", 0, position) + 1


@dataclass
class Example:
    path: str
    line: int          # the first line of the code, in the file
    code: str
    setup: str = ""
    setup_line: int = 0

    def __str__(self):
        return f"{self.path}:{self.line}"


def examples(language):
    """Every fenced block of ``language`` in the documentation, with its set-up."""
    found = []
    for path in DOCS:
        text = read(path)
        setups = [(match.start(), match.end(), match.group(1), line_of(text, match.start(1)))
                  for match in SETUP.finditer(text)]
        previous_end = 0
        for match in FENCE.finditer(text):
            if match.group(1) != language:
                continue
            example = Example(path, line_of(text, match.start(2)), match.group(2))
            for start, end, code, line in setups:
                if previous_end <= start and end <= match.start():
                    example.setup, example.setup_line = code, line
            found.append(example)
            previous_end = match.end()
    return found


def run(code, path, line, namespace):
    """exec ``code`` with tracebacks pointing at its lines in the Markdown file."""
    exec(compile("\n" * (line - 1) + code, os.path.join(ROOT, path), "exec"), namespace)


@pytest.mark.parametrize("example", examples("python"), ids=str)
def test_python_example_runs(example, tmp_path, monkeypatch, request):
    code = example.setup + example.code
    if re.search(r"^\s*(import|from) keras\b", code, re.M):
        request.getfixturevalue("keras")
    if "tf_keras" in code:
        if importlib.util.find_spec("tf_keras") is None:
            pytest.skip("needs tf-keras (pip install --no-deps tf-keras)")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    if example.setup:
        run(example.setup, example.path, example.setup_line, namespace)
    run(example.code, example.path, example.line, namespace)


def test_every_python_example_is_collected():
    found = examples("python")
    assert {example.path for example in found} >= {"README.md", "docs/layers.md",
                                                    "docs/saved-models.md"}
    # Every set-up comment belongs to an example.
    for path in DOCS:
        text = read(path)
        assert len(SETUP.findall(text)) == len({e.setup_line for e in found
                                                if e.path == path and e.setup}), path
        assert text.count("<!-- docs-test") == len(SETUP.findall(text)), \
            f"{path}: a docs-test comment that is not '<!-- docs-test setup ...\\n...\\n-->'"


# ---- the command line --------------------------------------------------------

def parser_without_types():
    """``minirnn``'s parser with every argument's type removed: paths and sizes are not
    checked (the files of an example need not exist), names, counts and choices are."""
    from minirnn.cli.app import build_parser
    parser = build_parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            action.type = None
            if action.choices and isinstance(action.choices, dict):
                stack.extend(action.choices.values())
    return parser


def subcommands():
    from minirnn.cli.app import build_parser
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action.choices, dict):
            return action.choices
    raise AssertionError("minirnn has no subcommands")


def shell_commands(program=("minirnn",)):
    """Each ``minirnn ...`` command (or other ``program``) of the ```bash blocks, as
    (where, argv)."""
    found = []
    for example in examples("bash"):
        for offset, line in enumerate(example.code.splitlines()):
            line = re.sub(r"\s+#.*$", "", line)
            for part in line.split("&&"):
                words = shlex.split(part)
                if tuple(words[:len(program)]) == program:
                    found.append((f"{example.path}:{example.line + offset}",
                                  words[len(program):]))
    return found


@pytest.mark.parametrize("where, argv", shell_commands(), ids=lambda v: str(v))
def test_shell_command_parses(where, argv, capsys):
    parser = parser_without_types()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `minirnn {' '.join(argv)}` does not parse: "
                    f"{capsys.readouterr().err.strip()}")
    assert args.command, f"{where}: `minirnn {' '.join(argv)}` names no command"


@pytest.mark.parametrize("where, argv", shell_commands(("python", "-m", "benchmarks")),
                         ids=lambda v: str(v))
def test_benchmark_command_parses(where, argv, capsys):
    from benchmarks.__main__ import parser
    try:
        parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `python -m benchmarks {' '.join(argv)}` does not parse: "
                    f"{capsys.readouterr().err.strip()}")


def test_the_shell_examples_show_every_command():
    shown = {argv[0] for _, argv in shell_commands() if argv}
    assert shown == set(subcommands()), sorted(set(subcommands()) - shown)


def _documented_options(help_text):
    """The options listed in a --help text: its usage line and its options section."""
    options = set()
    for line in help_text.splitlines():
        match = re.match(r"\s{2}(-\w, )?(--[\w-]+)", line)
        if match:
            options.add(match.group(2))
    return options


def test_cli_help_lists_every_option():
    text = read("docs/cli.md")
    blocks = {}
    for match in FENCE.finditer(text):
        first = match.group(2).splitlines()[0]
        found = re.fullmatch(r"\$ minirnn (?:(\w+) )?--help", first)
        if found:
            blocks[found.group(1)] = match.group(2)
    commands = subcommands()
    assert set(blocks) == {None, *commands}, "docs/cli.md needs each command's --help"
    from minirnn.cli.app import build_parser
    for name, block in blocks.items():
        parser = build_parser() if name is None else commands[name]
        real = {option for action in parser._actions for option in action.option_strings
                if option.startswith("--")}
        assert _documented_options(block) == real, \
            f"docs/cli.md: `minirnn {name or ''} --help` is out of date: run it and paste"
        usage = re.search(r"usage: (.*?)\n\n", block, re.S).group(1)
        assert set(re.findall(r"--[\w-]+", usage)) == real - {"--help"}, name


def test_demo_transcript_matches_the_command(keras, capsys):
    """The lines of docs/cli.md's demo transcript without figures are the command's."""
    from minirnn.cli.app import main
    text = read("docs/cli.md")
    transcript = next(m.group(2) for m in FENCE.finditer(text)
                      if m.group(2).startswith("$ minirnn demo\n"))
    assert main(["demo"]) in (0, 1)
    output = capsys.readouterr().out
    for line in transcript.splitlines()[1:]:
        if line.strip() in ("...", "") or "bitwise" in line or \
                re.search(r"\d\.\d|\d+ of \d+", line):
            continue  # figures, and what depends on the platform
        assert line in output.splitlines(), f"docs/cli.md demo transcript: {line!r}"


def test_quick_start_test_line_is_what_ci_runs():
    readme = read("README.md")
    quick = next(m.group(2) for m in FENCE.finditer(readme) if m.group(1) == "bash")
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in quick.splitlines()]
    assert lines[0] == 'pip install -e ".[keras]" && minirnn demo'
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as handle:
        ci = [line for line in handle.read().splitlines() if line and not line.startswith("#")]
    assert lines[1] == ci[-1].replace("pip install -q ", "pip install "), \
        "README's test line and .ci/run's last line differ"


# ---- generated tables, layers, the site --------------------------------------

def test_generated_tables_are_up_to_date():
    from benchmarks import docs
    stale = [os.path.relpath(path, ROOT) for path, _ in docs.stale_files()]
    assert not stale, f"{stale}: out of date; run python -m benchmarks.docs"


def test_saved_models_lists_every_supported_layer():
    from minirnn.files.safety import SUPPORTED
    text = read("docs/saved-models.md")
    missing = [name for name in SUPPORTED if f"`{name}`" not in text]
    assert not missing, f"docs/saved-models.md does not list {missing}"


def test_real_model_files_have_their_sections():
    for path in ("README.md", "docs/saved-models.md"):
        assert "\n## Real model files\n" in read(path), path


def _headings(text):
    text = FENCE.sub("", text)
    return [match.group(1) for match in re.finditer(r"^#{1,6} (.+)$", text, re.M)]


def _github_slug(heading):
    """GitHub's anchor: the heading's text, lower case, without punctuation but for
    hyphens and underscores, each space a hyphen."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_heading_anchors_are_the_same_on_github_and_in_the_site():
    toc = pytest.importorskip("markdown.extensions.toc")
    for path in DOCS:
        for heading in _headings(read(path)):
            text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
            assert toc.slugify(text, "-") == _github_slug(heading), f"{path}: {heading!r}"


def test_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[test]' brings it)")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    for path in DOCS[1:]:
        assert (site / path.replace(".md", ".html")).is_file(), path
