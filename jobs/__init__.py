"""Entry points, run as `python -m jobs.<name>`: thin wrappers that parse arguments and call
`pipeline`."""
