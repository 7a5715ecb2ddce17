"""The jobs' command line is made from the configs: one default, one choice list, one `main`."""
import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys

import pytest

from jobs import __main__ as jobs_list
from jobs import cli
from pipeline.batch import options
from pipeline.data.augment import AugmentConfig
from pipeline.evaluation.config import AuditConfig, EvaluateConfig, ExportConfig
from pipeline.features.config import EmbedConfig
from pipeline.fields import field
from pipeline.prediction.config import PredictConfig
from pipeline.training.config import FinetuneConfig
from pipeline.training.heads import HeadConfig
from tests.conftest import REPO, run_as_user

JOBS = sorted(p.stem for p in (REPO / "jobs").glob("*.py")
              if not p.stem.startswith("_") and p.stem != "cli")

#: (job, its required flags, the config its flags build, that config's required values).
CONFIGS = [
    ("embed", ["--data", "d"], EmbedConfig, {"data": "d"}),
    ("train_head", ["--cache", "c", "--out", "o"], HeadConfig, {}),
    ("finetune", ["--cache", "c"], FinetuneConfig, {}),
    ("audit", ["--cache", "c", "--out", "o"], AuditConfig, {}),
    ("evaluate", ["--model", "m", "--data", "d"], EvaluateConfig, {"model": "m", "data": "d"}),
    ("export", ["--model", "m", "--out", "o"], ExportConfig, {"model": "m", "out": "o"}),
    ("predict", ["--model", "m", "--data", "d"], PredictConfig, {"model": "m", "data": "d"}),
]


def _job(name):
    return importlib.import_module(f"jobs.{name}").JOB


@pytest.mark.parametrize("name, required, config_class, values", CONFIGS)
def test_flag_defaults_are_the_configs_defaults(name, required, config_class, values):
    args = _job(name).parse(required)
    assert cli.config_from(config_class, args) == config_class(**values)


def test_backbone_alone_means_the_same_width_on_the_command_line_and_in_python():
    for backbone in ("mobilenet_v2", "mobilenet", "efficientnet_b0"):
        args = _job("embed").parse(["--data", "d", "--backbone", backbone])
        from_flags = cli.config_from(EmbedConfig, args)
        assert from_flags == EmbedConfig(data="d", backbone=backbone)
    assert EmbedConfig(data="d").alpha == 0.5
    assert EmbedConfig(data="d", backbone="mobilenet").alpha is None  # Keras's own, 1.0


def test_choices_come_from_the_library_and_are_checked_in_python_too():
    with pytest.raises(SystemExit) as exited:
        _job("train_head").parse(["--cache", "c", "--out", "o", "--head", "forest"])
    assert exited.value.code == ("error: argument --head: invalid choice: 'forest' (choose from "
                                 "'dense', 'logistic')")
    with pytest.raises(ValueError, match="head: expected one of dense, logistic; got 'forest'"):
        HeadConfig(head="forest")
    with pytest.raises(ValueError, match="schedule: expected one of constant, cosine"):
        FinetuneConfig(schedule="linear")


def test_old_spellings_keep_working():
    args = _job("finetune").parse(["--cache", "c", "--head", "runs/head", "--out", "o"])
    assert args.head_dir == "runs/head"
    assert _job("audit").parse(["--cache", "c", "--out", "o", "--no-augmented"]).augmented is False
    args = _job("train_head").parse(["--cache", "c", "--out", "o", "--class-weight", "--quiet",
                                     "--no-standardize", "--train-fraction", "0.1", "1.0"])
    assert (args.class_weight, args.quiet, args.standardize) == (True, True, False)
    assert args.train_fraction == [0.1, 1.0]
    args = _job("embed").parse(["--data", "d", "--image-size", "96", "--no-face-crop",
                                "--weights", "none", "--augment", "none", "--runner=DaskRunner"])
    config = cli.config_from(EmbedConfig, args)
    assert (config.image_size, config.face_crop, config.weights) == (96, False, None)
    assert config.augment == AugmentConfig.none() and args.beam_args == ["--runner=DaskRunner"]


@pytest.mark.parametrize("name", JOBS)
def test_every_job_has_verbose_and_ends_help_with_a_worked_example(name):
    text = _job(name).build_parser().format_help()
    example = text[text.rindex("\nexample"):]
    assert f"python -m jobs.{name} " in example and "--verbose" in text


def test_importing_the_jobs_does_no_work():
    code = ("import os, sys; before = os.fstat(2).st_ino\n"
            f"import jobs, {', '.join(f'jobs.{name}' for name in JOBS)}\n"
            "assert 'tensorflow' not in sys.modules and 'apache_beam' not in sys.modules\n"
            "assert os.fstat(2).st_ino == before and 'TF_CPP_MIN_LOG_LEVEL' not in os.environ\n")
    done = run_as_user("-c", code)
    assert done.returncode == 0, done.stderr


#: Each job: its arguments with a misspelt flag, that flag, and the flag that was meant.
TYPOS = {
    "audit": (["--cache", "c", "--out", "o", "--fold", "5"], "--fold", "--folds"),
    "embed": (["--data", "d", "--augment-copy", "1"], "--augment-copy", "--augment-copies"),
    "evaluate": (["--model", "m", "--data", "d", "--fail-undr", "0.99"], "--fail-undr",
                 "--fail-under"),
    "experiment": (["--cache", "c", "--out", "o", "--quik"], "--quik", "--quick"),
    "export": (["--model", "m", "--out", "o", "--int9"], "--int9", "--int8"),
    "finetune": (["--cache", "c", "--ephocs", "5"], "--ephocs", "--epochs"),
    "predict": (["--model", "runs/head", "--data", "d", "--require-blesed", "reports"],
                "--require-blesed", "--require-blessed"),
    "quickstart": (["--weight-dir", "w"], "--weight-dir", "--weights-dir"),
    "train_head": (["--cache", "c", "--out", "o", "--ephocs", "5"], "--ephocs", "--epochs"),
}


def _refusal(typo, meant):
    return f"error: unknown flag {typo} (did you mean {meant}?)"


def test_a_misspelt_flag_is_refused_in_every_job_before_tensorflow_or_any_work():
    assert sorted(TYPOS) == JOBS  # a new job gets a line here
    code = ("import importlib, json, sys\n"
            "codes = {}\n"
            "for name, (argv, *_) in json.loads(sys.argv[1]).items():\n"
            "    try:\n"
            "        importlib.import_module('jobs.' + name).main(argv)\n"
            "    except SystemExit as exited:\n"
            "        codes[name] = exited.code\n"
            "print(json.dumps([codes, 'tensorflow' in sys.modules]))\n")
    done = run_as_user("-c", code, json.dumps(TYPOS))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    codes, tensorflow = json.loads(done.stdout)
    assert codes == {name: _refusal(typo, meant) for name, (_, typo, meant) in TYPOS.items()}
    assert not tensorflow


@pytest.mark.parametrize("name", ["predict", "train_head"])
def test_a_misspelt_flag_is_one_line_and_exit_status_1(name):
    argv, typo, meant = TYPOS[name]
    done = run_as_user("-m", f"jobs.{name}", *argv)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == _refusal(typo, meant) + "\n"


@pytest.mark.parametrize("argv, line", [
    (["--cache", "c"], "error: the following arguments are required: --out"),
    (["--cache", "c", "--out", "o", "--epochs", "five"],
     "error: argument --epochs: invalid int value: 'five'"),
    (["--cache", "c", "--out", "o", "--epoch", "5"],
     "error: unknown flag --epoch (did you mean --epochs?)"),  # no abbreviations
    (["--cache", "c", "--out", "o", "five", "--x=1", "y"],
     "error: unexpected argument 'five'; unknown flag --x; unexpected argument 'y'"),
])
def test_every_mistake_on_the_command_line_is_one_line(argv, line):
    with pytest.raises(SystemExit) as exited:
        _job("train_head").main(argv)
    assert exited.value.code == line


@pytest.mark.parametrize("name", JOBS)
def test_help_still_prints_everything_and_exits_0(name, capsys):
    with pytest.raises(SystemExit) as exited:
        _job(name).main(["--help"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("usage: ")


@pytest.mark.parametrize("beam_args, option, value", [
    (["--direct_num_workers", "2"], "direct_num_workers", 2),
    (["--runner", "DaskRunner", "--dask_client_address", "tcp://127.0.0.1:1"],
     "address", "tcp://127.0.0.1:1"),
    (["--runner=DaskRunner", "--dask_tls_ca_file=ca.pem", "--dask_require_encryption"],
     "dask_tls_ca_file", "ca.pem"),
    (["--runner=PortableRunner", "--job_endpoint", "localhost:8099",
      "--environment_type=LOOPBACK"], "job_endpoint", "localhost:8099"),
    (["--runner", "DataflowRunner", "--project", "p", "--region", "r", "--temp_location",
      "gs://b/t", "--setup_file", "./setup.py", "--labels", "team=vision"],
     "labels", ["team=vision"]),  # not taken for --labels-from-folders
])
def test_beams_options_still_reach_beam(beam_args, option, value):
    for name in ("embed", "evaluate", "predict"):
        args = _job(name).parse(["--model", "m", "--data", "d", *beam_args] if name != "embed"
                                else ["--data", "d", *beam_args])
        assert args.beam_args == beam_args
    assert options.pipeline_options(beam_args).get_all_options()[option] == value


@pytest.mark.parametrize("beam_args, line", [
    (["--direct_num_workers", "two"], "error: argument --direct_num_workers: invalid int value: "
                                      "'two'"),
    (["--direct-num-workers", "2"],
     "error: unknown flag --direct-num-workers (did you mean --direct_num_workers?)"),
    (["--runner", "DaskRunner", "--dask_client_adress", "tcp://h:1"],
     "error: unknown flag --dask_client_adress (did you mean --dask_client_address?)"),
    (["--runner", "no_such.Runner"], "error: --runner no_such.Runner: cannot import no_such "
                                     "(No module named 'no_such')"),
])
def test_a_beam_job_refuses_what_beam_would_drop_or_reject(beam_args, line):
    with pytest.raises(SystemExit) as exited:
        _job("embed").parse(["--data", "d", *beam_args])
    assert exited.value.code == line


@pytest.mark.parametrize("argv, said", [
    (["embed", "--data", "d"], "(got embed); run python -m jobs.embed --data d"),
    (["--data"], "(got --data); run python -m jobs.NAME, NAME one of quickstart, "),
])
def test_the_list_of_jobs_takes_no_arguments(argv, said):
    with pytest.raises(SystemExit) as exited:
        jobs_list.main(argv)
    assert exited.value.code.startswith("error: python -m jobs lists the jobs and takes no "
                                        "arguments " + said)


def test_main_turns_the_projects_errors_into_one_line_and_status_1(capsys):
    with pytest.raises(SystemExit) as exited:
        _job("finetune").main(["--cache", "c"])
    assert exited.value.code == "error: --head-dir and --out: required (unless --list-layers)"


def test_a_field_says_its_flag_type_default_and_help():
    @dataclasses.dataclass(frozen=True)
    class Config:
        path: str = field(help="a folder", metavar="DIR")
        size: int | str = field("auto", help="pixels or auto")
        ratio: float | None = field(None, help="a ratio", aliases=("--old-ratio",))
        crop: bool | str = field("auto", help="crop")
        sides: tuple[int, ...] = field((1, 2), help="sides")

    parser = cli.add_config_flags(argparse.ArgumentParser(), Config)
    args = parser.parse_args(["--path", "p", "--size", "96", "--old-ratio", "0.5", "--no-crop",
                              "--sides", "3"])
    assert cli.config_from(Config, args) == Config("p", 96, 0.5, False, [3])
    assert cli.config_from(Config, parser.parse_args(["--path", "p"])) == Config("p")
    text = parser.format_help()
    assert "pixels or auto (default: auto)" in text and "--path DIR" in text



def test_train_head_prints_its_own_lines_only_unless_verbose(tiny_cache, tmp_path, capsys):
    argv = ["--cache", tiny_cache.cache_dir, "--epochs", "3", "--ensemble", "2"]
    quiet = run_as_user("-m", "jobs.train_head", *argv, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "epoch 1/" not in quiet.stdout.lower()
    assert quiet.stdout.rstrip().endswith(str(tmp_path / "quiet" / "index.html"))
    _job("train_head").main([*argv, "--out", str(tmp_path / "verbose"), "--verbose"])
    assert "epoch 1/3" in capsys.readouterr().out.lower()  # per-epoch lines with --verbose
