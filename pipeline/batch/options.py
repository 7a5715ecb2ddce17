"""Beam's options for a job: the local default runner, runner short names, and what Beam takes.

`pipeline_options(args)` turns a job's leftover arguments into Beam `PipelineOptions`: Beam's
FnApiRunner in this process unless `--runner` says otherwise (`DaskRunner`, `PortableRunner`,
`DataflowRunner`, ...). Beam keeps only the arguments that some `PipelineOptions` subclass
declares and drops the others without a word, so a job first asks `split_beam_args` which of its
leftover arguments Beam would drop, and refuses them (`jobs.cli`). `DaskTlsOptions` are the
project's own Beam options: TLS for the Dask client (a Dask scheduler without TLS runs whatever
any client that reaches it sends).

No TensorFlow here: a job checks its arguments before it imports TensorFlow.

Example:
    >>> flags, unknown = split_beam_args(["--runner", "DaskRunner", "--dask_client_adress", "x"])
    >>> unknown
    ['--dask_client_adress', 'x']
"""
import argparse
import importlib

from apache_beam.options.pipeline_options import PipelineOptions

__all__ = ["DEFAULT_RUNNER_ARGS", "RUNNER_ALIASES", "DaskTlsOptions", "beam_args",
           "pipeline_options", "dask_security", "split_beam_args"]

#: Local default: Beam's portable FnApiRunner in this process, TensorFlow using every core
#: (measured fastest on one machine: bench/embed_throughput.py); never a Prism download.
DEFAULT_RUNNER_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
                       "--direct_num_workers=1"]

#: Runners Beam does not know by their short name.
RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}


def beam_args(args):
    """Beam's arguments with the local default runner and short runner names expanded."""
    if not any(arg.startswith("--runner") for arg in args):
        return DEFAULT_RUNNER_ARGS + list(args)
    expanded, args = [], list(args)
    while args:
        arg = args.pop(0)
        if arg == "--runner" and args:
            arg = f"--runner={args.pop(0)}"
        if arg.startswith("--runner="):
            arg = "--runner=" + RUNNER_ALIASES.get(arg.split("=", 1)[1], arg.split("=", 1)[1])
        expanded.append(arg)
    return expanded


class DaskTlsOptions(PipelineOptions):
    """TLS for the job's Dask client (`--runner DaskRunner --dask_client_address tls://...`).

    Beam's DaskRunner makes its `distributed.Client` from its own options, which have no TLS;
    the client takes its security from Dask's configuration, so `run_pipeline` sets
    `distributed.comm.tls.*` (and `require-encryption`) from these while the pipeline runs.
    """

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--dask_tls_ca_file", default=None,
                            help="CA certificate that the Dask scheduler's certificate is "
                            "checked against")
        parser.add_argument("--dask_tls_cert", default=None,
                            help="the client's certificate (PEM)")
        parser.add_argument("--dask_tls_key", default=None,
                            help="the client's private key (PEM), where not in --dask_tls_cert")
        parser.add_argument("--dask_require_encryption", action="store_true", default=False,
                            help="refuse any Dask connection that is not encrypted")


def dask_security(options):
    """Dask configuration of `DaskTlsOptions` (`{}` without any), for `dask.config.set`."""
    tls = options.view_as(DaskTlsOptions)
    values = {"distributed.comm.tls.ca-file": tls.dask_tls_ca_file,
              "distributed.comm.tls.client.cert": tls.dask_tls_cert,
              "distributed.comm.tls.client.key": tls.dask_tls_key}
    values = {key: value for key, value in values.items() if value}
    if tls.dask_require_encryption:
        values["distributed.comm.require-encryption"] = True
    return values


def pipeline_options(args=()):
    """`PipelineOptions` of a job's Beam arguments (`beam_args` applied)."""
    return PipelineOptions(beam_args(args))


def _refuse(message):
    """A parser's `error`: a `ValueError` that the job says in one line (not usage, status 2)."""
    raise ValueError(message)


def _runner_named(args):
    """The runner's import path that `args` name (`--runner X` or `--runner=X`), or None."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runner")
    parser.error = _refuse
    name = parser.parse_known_args(args)[0].runner
    return RUNNER_ALIASES.get(name, name)


def _register_runner_options(args):
    """Imports the modules of the runners given by import path, whose options classes register
    there (Beam's DaskRunner declares `DaskOptions` in its own module): the one `args` name, as
    Beam's runner lookup would, and those of `RUNNER_ALIASES` where installed, so that the
    options Beam takes do not depend on what this process imported before.

    Raises:
        ValueError: the module of the runner `args` name cannot be imported.
    """
    named = _runner_named(args)
    for runner in dict.fromkeys([*RUNNER_ALIASES.values(), named]):
        if not runner or "." not in runner:
            continue  # a runner Beam knows by its short name: its options are Beam's own
        module = runner.rpartition(".")[0]
        try:
            importlib.import_module(module)
        except ImportError as err:
            if runner == named:
                raise ValueError(f"--runner {runner}: cannot import {module} ({err})") from err


def _beam_parser():
    """The parser Beam builds in `PipelineOptions.get_all_options`, through its own hook: each
    subclass of `PipelineOptions` loaded adds its flags (`_add_argparse_args`)."""
    parsers = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    return parsers[0]


def split_beam_args(args):
    """Which of a job's leftover arguments Beam takes, as Beam's `PipelineOptions` parse them.

    The runners given by import path register their options first (`--runner DaskRunner`:
    Dask's `DaskOptions`); then every options class loaded declares its flags, as in Beam's
    `get_all_options`, which drops the arguments that none declares.

    Args:
        args: the arguments a Beam job's own parser left (`--flag value` or `--flag=value`).

    Returns:
        `(flags, unknown)`: every flag Beam takes with this runner, and the arguments of `args`
        that Beam would drop (an unknown flag, then its value if one follows).

    Raises:
        ValueError: the value of a Beam option is not valid (`--direct_num_workers two`), or
            the runner's module cannot be imported.
    """
    _register_runner_options(args)
    parser = _beam_parser()
    parser.error = _refuse
    unknown = parser.parse_known_args(list(args))[1]
    return sorted(parser._option_string_actions), unknown  # noqa: SLF001  (as Beam reads it)

