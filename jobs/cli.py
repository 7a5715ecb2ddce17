"""The jobs' command line, made from their configs, and the one `main` that every job shares.

`add_config_flags(parser, Config)` adds one flag per field of a config dataclass: its name
(`--field-name`, or the field's own `flag` and `aliases`), type, default, choices and help, all
from the field and its metadata (`pipeline.fields.field`), so that a default or a choice list
exists once, in the library. `config_from(Config, args)` builds the config back.

A job module declares a `Job`: its flags, what it runs and what it prints. `Job.parse` refuses
in one line (`error: unknown flag --ephocs (did you mean --epochs?)`, exit status 1) any argument
that no flag takes and any invalid value; a Beam job hands what Beam's own options take
(`--runner ...`, `pipeline.batch.options.split_beam_args`) to Beam, so that nothing is dropped
without a word. `Job.main` parses the arguments once, configures the output (the job's own lines
only, unless `--verbose`), runs, prints the result and turns the failures a person can act on
(the project's refusals, the file system, a runner: `pipeline.errors`) into one line and exit
status 1. A job module imports only TensorFlow-free configs at its top and what runs inside its
`run`, so that `--help` answers at once and TensorFlow's start-up lines can be dropped
(`pipeline.console`).

Example:
    >>> JOB = Job("export", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, ExportConfig),
    ...           run=_run, report=_report)
    >>> main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser
"""
import argparse
import dataclasses
import difflib
import gc
import logging
import sys
import types
import typing
import warnings

from pipeline import console, errors
from pipeline.fields import field

__all__ = ["Job", "add_config_flags", "config_from", "configure_output", "cache_folder",
           "output_folder"]

_VERBOSE_HELP = "show TensorFlow, Keras and Beam logs and warnings"


def _value_types(hint):
    """The non-None types of a field's annotation (`int | None` -> `(int,)`)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for t in typing.get_args(hint) if t is not type(None))
    return (hint,)


def _number_or_word(number):
    def parse(text):
        try:
            return number(text)
        except ValueError:
            return text  # a word such as "auto"; the config validates it
    parse.__name__ = number.__name__
    return parse


def _flag_type(value_types):
    """The `type=` of a flag and its `nargs` (tuples take one or more values)."""
    (kind, *others) = value_types
    if typing.get_origin(kind) is tuple:
        return typing.get_args(kind)[0], "+"
    if others and str in value_types:
        number = next(t for t in value_types if t in (int, float))
        return _number_or_word(number), None
    return kind, None


def _default_of(item):
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def _help_of(item, default):
    text = item.metadata.get("help", "")
    shown = item.metadata.get("default_text")
    if shown is None and not any(default is nothing for nothing in (dataclasses.MISSING, None,
                                                                     False, ())):
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    return (text + (f" (default: {shown})" if shown is not None else "")).replace("%", "%%")


class _Parser(argparse.ArgumentParser):
    """A job's parser: a mistake is one line, `error: ...`, and exit status 1 (not usage, 2)."""

    def error(self, message):
        raise SystemExit(f"error: {message}")


def _flags_of(parser):
    """The long flags that `parser` takes (`--epochs`, `--no-face-crop`)."""
    actions = parser._option_string_actions  # noqa: SLF001  (every flag, as Beam reads them)
    return [flag for flag in actions if flag.startswith("--")]


def _split_beam_args(parser, rest, *, quiet):
    """`(Beam's flags, what Beam would drop)` of `rest`; Beam's import lines dropped if `quiet`."""
    restore = console.silence_library_logs() if quiet else (lambda: None)
    try:
        from pipeline.batch.options import split_beam_args  # noqa: PLC0415  (Beam: 1 s)

        return split_beam_args(rest)
    except ValueError as err:
        parser.error(str(err))
    finally:
        restore()


def _unknown(rest, flags):
    """One line naming every argument in `rest` that no flag takes, with the closest flag."""
    problems, value_next = [], False
    for arg in rest:
        if not arg.startswith("-"):
            if not value_next:
                problems.append(f"unexpected argument {arg!r}")
            value_next = False  # else the value of the unknown flag before it
            continue
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag.lstrip("-"), [f[2:] for f in flags], n=1)
        problems.append(f"unknown flag {flag}" + (f" (did you mean --{close[0]}?)" if close
                                                  else ""))
        value_next = "=" not in arg
    return "; ".join(problems)


def cache_folder():
    """The `--cache DIR` field of the jobs that read a feature cache."""
    return field(help="cache folder written by jobs.embed, e.g. cache/<key>", metavar="DIR")


def output_folder(default=dataclasses.MISSING):
    """The `--out DIR` field of the jobs that write a folder of results."""
    return field(default, help="output folder", metavar="DIR")


def add_config_flags(parser, config_class, *, skip=()):
    """Adds a flag for every field of `config_class` that the command line offers.

    Args:
        parser: an `argparse.ArgumentParser` (or argument group).
        config_class: a dataclass whose fields are declared with `pipeline.fields.field`.
        skip: names of fields the job sets itself. Defaults to `()`.

    Returns:
        `parser`.
    """
    hints = typing.get_type_hints(config_class)
    for item in dataclasses.fields(config_class):
        meta = item.metadata
        if item.name in skip or not meta.get("cli", True):
            continue
        names = [meta.get("flag") or "--" + item.name.replace("_", "-"), *meta.get("aliases", ())]
        default = _default_of(item)
        kwargs = {"dest": item.name, "help": _help_of(item, default)}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        value_types = _value_types(hints[item.name])
        if bool in value_types:
            negatable = meta.get("negatable", True)
            kwargs["action"] = argparse.BooleanOptionalAction if negatable else "store_true"
        else:
            kind, nargs = _flag_type(value_types)
            kwargs["type"] = meta.get("parse") or kind
            if nargs and meta.get("repeatable"):
                kwargs.update(action="append", default=list(default))
            elif nargs:
                kwargs["nargs"] = nargs
            if meta.get("const") is not None:
                kwargs.update(nargs="?", const=meta["const"])
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar") or meta.get("choices") is None:
                kwargs["metavar"] = meta.get("metavar") or names[0][2:].upper().replace("-", "_")
        parser.add_argument(*names, **kwargs)
    return parser


def config_from(config_class, args, **values):
    """The `config_class` of parsed arguments: every field that has a flag, then `values`."""
    given = {item.name: getattr(args, item.name) for item in dataclasses.fields(config_class)
             if hasattr(args, item.name)}
    return config_class(**{**given, **values})


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """A warning as a job prints it: one line, `warning: <message>`."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def configure_output(verbose):
    """INFO logs with `--verbose`; else the libraries silenced and TensorFlow imported quietly.
    Warnings that reach a job (the project's own) print as one line, `warning: ...`."""
    warnings.showwarning = _warning_line
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                            force=True)
        return
    console.quiet_libraries()


@dataclasses.dataclass(frozen=True)
class Job:
    """One job's command line, what it runs and what it prints.

    Attributes:
        name: the module name under `jobs/` (`python -m jobs.<name>`).
        doc: the module's docstring; its first line describes the job in `--help`.
        example: the worked example that ends `--help`.
        flags: adds the job's flags to a parser (`add_config_flags` for each config).
        run: `run(args, *, show_progress=False, **extras)`: does the work, returns a result.
        report: `report(result, args)`: prints the result; returns an exit status or None.
        beam: the job runs Beam: Beam's options (`--runner ...`) go to Beam (`args.beam_args`).
    """

    name: str
    doc: str
    example: str
    flags: typing.Callable
    run: typing.Callable
    report: typing.Callable
    beam: bool = False

    def build_parser(self):
        """The job's `argparse` parser, `--verbose` and the worked example included."""
        parser = _Parser(
            prog=f"python -m jobs.{self.name}", description=self.doc.strip().split("\n")[0],
            epilog=self.example, formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False)  # an abbreviation would take a Beam flag (--labels) as the job's
        self.flags(parser)
        parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
        return parser

    def parse(self, argv=None):
        """Parses `argv` once; a Beam job keeps Beam's arguments as `beam_args`.

        Raises:
            SystemExit: `error: <one line>` (exit status 1) for any argument neither the job
                nor, in a Beam job, Beam's options take, or any invalid value; `--help` exits 0.
        """
        parser = self.build_parser()
        args, rest = parser.parse_known_args(argv)
        flags = _flags_of(parser)
        if self.beam:
            args.beam_args = rest
            if rest:  # Beam drops what no option declares: ask it which those are
                beam_flags, rest = _split_beam_args(parser, rest, quiet=not args.verbose)
                flags += beam_flags
        if rest:
            parser.error(_unknown(rest, flags))
        return args

    def run_argv(self, argv=None, **extras):
        """Parses `argv` and runs the job; returns its result (for tests and other jobs)."""
        return self.run(self.parse(argv), **extras)

    def main(self, argv=None):
        """The job as a program: parse, configure the output, run, report, exit status."""
        args = self.parse(argv)
        configure_output(args.verbose)
        try:
            result = self.run(args, show_progress=True)
            status = self.report(result, args)
        except Exception as err:  # noqa: BLE001  (known failures as one line; bugs raise)
            line = errors.one_line(err)
            if line is None:
                raise
            status = f"error: {line}"
        except KeyboardInterrupt:
            # Every output is staged and published whole (`pipeline.publish`,
            # `pipeline.batch.outputs`): what was being written is gone, the previous output kept.
            print(f"error: interrupted: jobs.{self.name} stopped; nothing new was published",
                  file=sys.stderr)
            status = 130
        finally:
            # The interpreter's last garbage collections would walk every object TensorFlow
            # made (0.7-0.9 s of a short job's exit); frozen, they are left to the exit.
            gc.freeze()
        if status:
            sys.exit(status)
