"""Beam's options for a job: the local default runner, short names, and what Beam would drop."""
import os
import subprocess
import sys

import pytest

from pipeline.batch import options
from tests.conftest import run_as_user


@pytest.mark.parametrize("args, expected", [
    ([], options.DEFAULT_RUNNER_ARGS),
    (["--temp_location=/t"], [*options.DEFAULT_RUNNER_ARGS, "--temp_location=/t"]),
    (["--runner", "DaskRunner", "--x"], [f"--runner={options.RUNNER_ALIASES['DaskRunner']}",
                                         "--x"]),
    (["--runner=DataflowRunner"], ["--runner=DataflowRunner"]),
])
def test_beam_args_default_to_the_local_runner_and_expand_short_names(args, expected):
    assert options.beam_args(args) == expected


def test_pipeline_options_hold_the_runner():
    held = options.pipeline_options(["--runner=PortableRunner"]).get_all_options()
    assert held["runner"] == "PortableRunner"
    assert options.pipeline_options().get_all_options()["runner"] == "FnApiRunner"


@pytest.mark.parametrize("args, unknown", [
    (["--runner", "DaskRunner", "--dask_client_address", "tcp://h:1", "--dask_tls_cert=c.pem"],
     []),
    (["--direct_num_workers=2", "--direct_running_mode", "multi_processing"], []),
    (["--project", "p", "--ephocs", "5", "--temp_location=gs://b/t", "--x=1"],
     ["--ephocs", "5", "--x=1"]),
])
def test_split_beam_args_finds_what_beam_would_drop(args, unknown):
    flags, dropped = options.split_beam_args(args)
    assert dropped == unknown
    assert {"--runner", "--dask_client_address", "--dask_tls_ca_file", "--project"} <= set(flags)


@pytest.mark.parametrize("args, message", [
    (["--direct_num_workers", "two"], "argument --direct_num_workers: invalid int value: 'two'"),
    (["--runner"], "argument --runner: expected one argument"),
    (["--runner=no_such.Runner"], r"--runner no_such.Runner: cannot import no_such \(No module"),
])
def test_split_beam_args_refuses_bad_values_in_one_line(args, message):
    with pytest.raises(ValueError, match=message):
        options.split_beam_args(args)


def test_the_options_need_no_tensorflow():
    code = ("import sys\nfrom pipeline.batch import options\n"
            "options.split_beam_args(['--runner', 'DaskRunner'])\n"
            "assert 'tensorflow' not in sys.modules\n")
    done = run_as_user("-c", code)
    assert done.returncode == 0, done.stderr
