"""Entry points, run as `python -m jobs.<name>`: thin wrappers that parse arguments and call
`pipeline`. `python -m jobs` lists them; `jobs.cli` makes their command lines from the configs.

Importing this package does nothing: a job configures its output when it runs (`Job.main`), quiet
by default (its own lines only), everything with `--verbose`.
"""
