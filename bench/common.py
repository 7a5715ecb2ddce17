"""Helpers shared by the benchmark scripts (not part of the library)."""
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
GENKI = REPO.parent / "shared" / "data" / "genki4k"
MOBILENET_025 = REPO.parent / "shared" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"


def genki_subset(root, per_class):
    """Symlinks the first `per_class` GENKI-4K images of each class under `root`; returns it."""
    if not GENKI.is_dir():
        sys.exit(f"{GENKI} is not here: the benchmark needs the GENKI-4K folder")
    root = pathlib.Path(root)
    for name in ("not_smiling", "smiling"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for file in sorted(os.listdir(GENKI / name))[:per_class]:
            link = root / name / file
            if not link.exists():
                link.symlink_to(GENKI / name / file)
    return str(root)


def run_job(module, args, *, check=True, code_root=None):
    """Runs `python -m module args` in a subprocess (`check`: a non-zero exit raises), with the
    code of this checkout, or of `code_root` (a folder holding `pipeline/` and `jobs/`).

    Returns:
        `(seconds, peak RSS MB of the largest child so far, the last line it printed)`.
    """
    env = {**os.environ, "PYTHONPATH": str(code_root)} if code_root else None
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=code_root or REPO,
                          env=env, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = done.stdout.strip().splitlines()
    return seconds, peak / 1024, lines[-1] if lines else ""


def emit(figures):
    """Prints the closing JSON line of a benchmark."""
    print(json.dumps(figures, sort_keys=True))


def export_code(commit, folder):
    """Writes `pipeline/` and `jobs/` as they were at `commit` into `folder`; returns it."""
    os.makedirs(folder, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, "pipeline", "jobs"], cwd=REPO,
                             check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder
