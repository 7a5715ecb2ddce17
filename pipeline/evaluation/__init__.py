"""Stage 4, evaluation: scheduled evaluation, export, the data audit."""
