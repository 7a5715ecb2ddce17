"""The documentation holds together: links resolve, and each job's page lists its live flags.

The link checks read Markdown only (no TensorFlow). The flag check asks the jobs themselves: one
subprocess imports every job module and prints each `build_parser().format_help()` (falling
back to `python -m jobs.NAME --help` for a module without `build_parser`), so a flag added to
or renamed in a job's command line without its docs page fails here. The Python API page's
example runs as is, in a subprocess, and prints none of the libraries' log lines.
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = ["embed", "train_head", "finetune", "evaluate", "predict", "export", "audit",
        "quickstart", "experiment"]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_FLAG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9-]*")


def _doc_files():
    return [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def _prose(text):
    """Markdown without fenced blocks and inline code (links there are not links)."""
    return _CODE.sub("", _FENCE.sub("", text))


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    with open(path, encoding="utf-8") as handle:
        text = _FENCE.sub("", handle.read())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def _links():
    for path in _doc_files():
        with open(path, encoding="utf-8") as handle:
            text = _prose(handle.read())
        for match in _LINK.finditer(text):
            yield path, match.group(1) or match.group(2)


def test_the_docs_exist():
    for name in JOBS:
        assert os.path.isfile(os.path.join(ROOT, "docs", "jobs", f"{name}.md")), name
    for name in ("cache", "reports", "runners", "weights", "python_api", "reliability"):
        assert os.path.isfile(os.path.join(ROOT, "docs", f"{name}.md")), name
    assert os.path.isfile(os.path.join(ROOT, "bench", "README.md"))


def test_every_relative_link_resolves():
    broken = []
    for path, target in _links():
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                    if file_part else path)
        where = os.path.relpath(path, ROOT)
        if not os.path.exists(resolved):
            broken.append(f"{where}: {target} (no such file)")
        elif anchor and resolved.endswith(".md") and anchor not in _anchors(resolved):
            broken.append(f"{where}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_python_api_example_runs_and_prints_only_its_own_lines(tmp_path):
    with open(os.path.join(ROOT, "docs", "python_api.md"), encoding="utf-8") as handle:
        example = re.search(r"^```python\n(.*?)^```", handle.read(), re.S | re.M).group(1)
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "head accuracy" in done.stdout and "'rows': 40" in done.stdout
    for library_line in ("cuInit", "apitools", "absl::InitializeLog", "oneDNN", "WARNING"):
        assert library_line not in done.stderr, done.stderr[-3000:]
    assert not re.search(r"^[IWEF]\d{4} ", done.stderr, re.M), done.stderr[-3000:]


def test_the_readme_keeps_its_two_set_up_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as handle:
        ci_command = [line for line in handle if line.startswith("python3 -m venv")][0].strip()
    assert ci_command in readme
    assert ("python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . && "
            "python -m jobs.quickstart --weights-dir ../shared/weights") in readme
    assert len(readme.splitlines()) <= 250


_HELP_SCRIPT = r"""
import importlib, json, subprocess, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = importlib.import_module("jobs." + name).build_parser().format_help()
    except Exception as err:  # no build_parser, or it fails: ask the command line itself
        done = subprocess.run([sys.executable, "-m", "jobs." + name, "--help"],
                              capture_output=True, text=True)
        out[name] = done.stdout if done.returncode == 0 else (
            "error: " + repr(err) + "\n" + done.stderr[-2000:])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def help_texts():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="100")
    done = subprocess.run([sys.executable, "-c", _HELP_SCRIPT, *JOBS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def help_flags(text):
    """The `--flags` an argparse help text lists in its option lines (not its usage or prose)."""
    flags = set()
    for line in text.splitlines():
        match = re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line)
        if match:
            flags.update(_FLAG.findall(match.group(1)))
    return flags


def page_flags(path):
    """The `--flags` in the first column of the table under a page's `## Flags` heading."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    section = re.search(r"^## Flags\s*$(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, f"{path}: no '## Flags' section"
    flags = set()
    for line in section.group(1).splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|?\s*$", line):
            flags.update(_FLAG.findall(line.split("|")[1]))
    return flags


def test_help_flags_parses_argparse_output():
    text = ("usage: x [-h] [--a-b A_B]\n\noptions:\n  -h, --help   show\n"
            "  --a-b A_B    the --not-this flag in prose\n"
            "  --c, --no-c  on or off\n                        continued --nor-this\n")
    assert help_flags(text) == {"--help", "--a-b", "--c", "--no-c"}


@pytest.mark.parametrize("name", JOBS)
def test_each_job_page_lists_exactly_its_flags(name, help_texts):
    assert not help_texts[name].startswith("error: "), help_texts[name]
    live = help_flags(help_texts[name])
    documented = page_flags(os.path.join(ROOT, "docs", "jobs", f"{name}.md"))
    assert documented == live, (
        f"docs/jobs/{name}.md: missing {sorted(live - documented)}, "
        f"not in --help {sorted(documented - live)}")
