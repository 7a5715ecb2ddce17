"""Config fields that describe themselves: help, choices and a flag name, in one place.

Every job's config is a frozen dataclass. `field(...)` declares one of its fields with what a
reader (and the command line that `jobs.cli` makes from the dataclass) needs: a one-line help,
the valid choices, and, where the flag is not simply `--field-name`, its spelling and aliases.
A default or a choice list therefore exists once, in the library; `check_choices(config)`
validates every field that has choices.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class Config:
    ...     head: str = field("dense", help="kind of head", choices=("dense", "logistic"))
    ...     def __post_init__(self):
    ...         check_choices(self)
"""
import dataclasses

from pipeline.validation import check_choice

__all__ = ["field", "check_choices"]


def field(default=dataclasses.MISSING, *, help, choices=None, flag=None, aliases=(),
          metavar=None, parse=None, default_text=None, negatable=True, const=None,
          repeatable=False, cli=True):
    """A dataclass field with its help and command-line spelling in its metadata.

    Args:
        default: the default; none means the field is required.
        help: one line: what the value means (the default is added to it on the command line).
        choices: the valid values, or None. Defaults to `None`.
        flag: the flag, where it is not `--field-name`. Defaults to `None`.
        aliases: older spellings of the flag that keep working. Defaults to `()`.
        metavar: the value's name in `--help`. Defaults to `None`.
        parse: turns the flag's text into the value, where the field's type does not say how.
            Defaults to `None`.
        default_text: how `--help` shows the default, where its value does not read well.
            Defaults to `None`.
        negatable: a boolean's flag has a `--no-` form too; False for a switch that only turns
            something on (`--resume`). Defaults to `True`.
        const: the value of the bare flag, which then takes an optional value (`--follow-links`
            means `inside`, `--follow-links=any` all). Defaults to `None`.
        repeatable: a tuple field's flag is given once per value (`--require A --require B`).
            Defaults to `False`.
        cli: whether the command line offers the field. Defaults to `True`.
    """
    metadata = {"help": help, "choices": choices, "flag": flag, "aliases": tuple(aliases),
                "metavar": metavar, "parse": parse, "default_text": default_text,
                "negatable": negatable, "const": const, "repeatable": repeatable, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def check_choices(config):
    """Checks every field of `config` that declares choices (each value of a repeatable one);
    raises `ValueError` on the first."""
    for item in dataclasses.fields(config):
        choices = item.metadata.get("choices")
        if choices is None:
            continue
        value = getattr(config, item.name)
        for one in value if item.metadata.get("repeatable") else [value]:
            check_choice(one, item.name, choices)
