"""One embed job, one predict job and one evaluation on several Beam runners: the FnApiRunner,
Dask (a real scheduler and two worker processes on 127.0.0.1) and the PortableRunner (Beam's
local job service) write the same cache, the same predictions and the same report."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from jobs import embed, evaluate, predict, train_head
from tests.conftest import IN_MEMORY, REPO, TINY

DASK = os.path.join(os.path.dirname(sys.executable), "dask")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, process, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port}")


@contextlib.contextmanager
def _processes(*commands):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for c in commands]
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def dask_scheduler():
    """`tcp://127.0.0.1:PORT` of a `dask scheduler` with two `dask worker` processes."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with _processes([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"]) as (scheduler,):
        _wait_for_port(port, scheduler)
        worker = [DASK, "worker", address, "--nthreads", "1", "--no-dashboard",
                  "--host", "127.0.0.1"]
        with _processes(worker, worker):
            from distributed import Client

            with Client(address, timeout=60) as client:
                client.wait_for_workers(2, timeout=120)
            yield address


@pytest.fixture(scope="module")
def job_service():
    """`localhost:PORT` of Beam's local job service (for the PortableRunner)."""
    port = _free_port()
    with _processes([sys.executable, "-m",
                     "apache_beam.runners.portability.local_job_service_main",
                     "--port", str(port)]) as (service,):
        _wait_for_port(port, service)
        yield f"localhost:{port}"


@pytest.fixture(scope="module")
def mixed_folder(faces, tmp_path_factory, request):
    """Generated faces, 40 GENKI-4K images where ../shared has them, and three bad files."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(faces, root, dirs_exist_ok=True)
    with contextlib.suppress(pytest.skip.Exception):
        genki = request.getfixturevalue("genki_subset")
        for source, target in (("not_smiling", "neutral"), ("smiling", "smiling")):
            for name in sorted(os.listdir(os.path.join(genki, source))):
                shutil.copyfile(os.path.join(genki, source, name), root / target / f"genki_{name}")
    (root / "smiling" / "empty.jpg").write_bytes(b"")
    (root / "neutral" / "notes.png").write_bytes(b"not an image")
    data = (root / "neutral" / "neutral_0001.jpg").read_bytes()
    (root / "neutral" / "cut.jpg").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="module")
def backbone_args(request):
    """Real MobileNet 0.25 weights at 64 px where ../shared has them, else the tiny random one.

    Random weights give near-zero embeddings whose last bits depend on the worker thread, so
    byte equality of shards is only asserted with real weights.
    """
    try:
        weights = request.getfixturevalue("mobilenet_weights")
    except pytest.skip.Exception:
        return TINY, False
    return ["--backbone", "mobilenet", "--alpha", "0.25", "--image-size", "64", "--weights",
            weights], True


def _embed(folder, cache_root, backbone_args, *runner):
    return embed.run(["--data", str(folder), "--cache-dir", str(cache_root), *backbone_args,
                      "--augment-copies", "1", "--num-shards", "3", *runner]).manifest


def _summary(manifest, exact):
    kept = ("cache_key", "counts", "skipped", "num_shards", "listed", "embedded")
    summary = {key: manifest[key] for key in kept}
    summary["shards"] = [{k: v for k, v in shard.items() if exact or k not in ("sha256",)}
                         for shard in manifest["shards"]]
    return summary


def test_fnapi_dask_and_portable_runners_write_identical_caches(
        mixed_folder, backbone_args, dask_scheduler, job_service, tmp_path):
    args, exact = backbone_args
    fnapi = _embed(mixed_folder, tmp_path / "fnapi", args, *IN_MEMORY)
    dask = _embed(mixed_folder, tmp_path / "dask", args, "--runner=DaskRunner",
                  f"--dask_client_address={dask_scheduler}")
    portable = _embed(mixed_folder, tmp_path / "portable", args, "--runner=PortableRunner",
                      f"--job_endpoint={job_service}", "--environment_type=LOOPBACK")
    assert fnapi["num_skipped"] == 3 and fnapi["listed"] == fnapi["embedded"] + 3
    assert _summary(dask, exact) == _summary(fnapi, exact)
    assert _summary(portable, exact) == _summary(fnapi, exact)


def _predict(head, folder, out, *runner):
    return predict.run(["--model", head, "--data", str(folder), "--out", str(out),
                        "--num-shards", "3", *runner]).manifest


def test_fnapi_dask_and_portable_runners_write_identical_predictions(
        mixed_folder, backbone_args, dask_scheduler, job_service, tmp_path):
    args, exact = backbone_args
    cache_dir = embed.run(["--data", str(mixed_folder), "--cache-dir", str(tmp_path / "cache"),
                           *args, "--augment-copies", "0", *IN_MEMORY]).cache_dir
    train_head.run(["--cache", cache_dir, "--out", str(tmp_path / "head"), "--quiet",
                    "--epochs", "3", "--epoch-folds", "0"])
    head = str(tmp_path / "head")
    runs = [_predict(head, mixed_folder, tmp_path / "fnapi", *IN_MEMORY),
            _predict(head, mixed_folder, tmp_path / "dask", "--runner=DaskRunner",
                     f"--dask_client_address={dask_scheduler}"),
            _predict(head, mixed_folder, tmp_path / "portable", "--runner=PortableRunner",
                     f"--job_endpoint={job_service}", "--environment_type=LOOPBACK")]
    kept = ("run_key", "counts", "skipped", "per_class", "histogram")
    summaries = [{**{key: run[key] for key in kept},
                  "shards": [{k: v for k, v in shard.items() if exact or k != "sha256"}
                             for shard in run["shards"]]} for run in runs]
    assert runs[0]["num_skipped"] == 3 and runs[0]["counts"]["rows"] == runs[0]["listed"] - 3
    assert summaries[1] == summaries[0] and summaries[2] == summaries[0]


def test_a_distributed_evaluation_gives_the_local_figures(mixed_folder, backbone_args,
                                                          dask_scheduler, tmp_path):
    args, _ = backbone_args
    cache_dir = embed.run(["--data", str(mixed_folder), "--cache-dir", str(tmp_path / "cache"),
                           *args, "--augment-copies", "0", *IN_MEMORY]).cache_dir
    train_head.run(["--cache", cache_dir, "--out", str(tmp_path / "head"), "--quiet",
                    "--epochs", "3", "--epoch-folds", "0"])
    common = ["--model", str(tmp_path / "head"), "--data", str(mixed_folder)]
    local, _ = evaluate.run([*common, "--reports-dir", str(tmp_path / "local"), *IN_MEMORY])
    dask, _ = evaluate.run([*common, "--reports-dir", str(tmp_path / "dask"),
                            "--runner=DaskRunner", f"--dask_client_address={dask_scheduler}"])
    kept = ("num_examples", "num_skipped", "accuracy", "macro_f1", "roc_auc", "ece",
            "confusion_matrix", "per_class", "data_fingerprint")
    assert {key: dask[key] for key in kept} == {key: local[key] for key in kept}
    assert local["num_skipped"] == 3
    assert [row["id"] for row in dask["most_wrong"]] == [row["id"] for row in local["most_wrong"]]


def _self_signed(folder):
    """A self-signed certificate and key for 127.0.0.1 (CA, server and client at once)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_the_dask_client_speaks_tls_from_the_jobs_options(tmp_path):
    pytest.importorskip("distributed")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not here")
    import dask
    from distributed import Client

    from pipeline.batch.options import dask_security, pipeline_options

    cert, key = _self_signed(tmp_path)
    port = _free_port()
    address = f"tls://127.0.0.1:{port}"
    with _processes([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--protocol", "tls", "--no-dashboard", "--tls-ca-file", cert,
                     "--tls-cert", cert, "--tls-key", key]) as (scheduler,):
        _wait_for_port(port, scheduler)
        options = pipeline_options([f"--dask_tls_ca_file={cert}", f"--dask_tls_cert={cert}",
                                    f"--dask_tls_key={key}", "--dask_require_encryption"])
        with dask.config.set(dask_security(options)):
            with Client(address, timeout=30) as client:  # as Beam's DaskRunner makes it
                assert client.scheduler_info()["address"] == address
        with pytest.raises((OSError, TypeError, ValueError)):  # no TLS: refused
            Client(address, timeout=5)
    assert dask_security(pipeline_options([])) == {}
