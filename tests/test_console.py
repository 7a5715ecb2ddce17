"""Tests of pipeline.console: library logs off and back on, progress lines and bars."""
import io
import logging
import warnings

import pytest

from pipeline.console import Progress, format_duration, silence_library_logs, track


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silence_library_logs_raises_levels_and_restore_puts_them_back():
    beam, keras = logging.getLogger("apache_beam"), logging.getLogger("keras")
    beam.setLevel(logging.INFO)
    keras.setLevel(logging.INFO)
    restore = silence_library_logs()
    assert (beam.level, keras.level) == (logging.CRITICAL, logging.ERROR)  # Beam: raised later
    restore()
    assert (beam.level, keras.level) == (logging.INFO, logging.INFO)


def test_silence_library_logs_ignores_deprecations_but_keeps_own_warnings():
    restore = silence_library_logs()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("old", DeprecationWarning)
            warnings.warn("fallback taken", UserWarning)
    finally:
        restore()
    assert [str(w.message) for w in caught] == ["fallback taken"]


@pytest.mark.parametrize("seconds, text", [(44.4, "44 s"), (185, "3 min 05 s"),
                                           (3720, "1 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_plain_progress_prints_a_line_per_interval_and_a_final_line():
    clock, stream = _Clock(), io.StringIO()
    with Progress(3200, desc="embed", stream=stream, interval=5.0, clock=clock) as progress:
        clock.now = 1.0
        progress.update(100)  # before the interval: no line
        clock.now = 26.55
        progress.update(1100)
    lines = stream.getvalue().splitlines()
    assert lines == ["embed: 1,200/3,200 images (37.5%), 45.2 images/s, ETA 44 s",
                     "embed: 1,200/3,200 images (37.5%), 45.2 images/s, done in 27 s"]


def test_plain_progress_takes_a_total_that_becomes_known_later():
    clock, stream = _Clock(), io.StringIO()
    progress = Progress(desc="embed", stream=stream, interval=1.0, clock=clock)
    clock.now = 2.0
    progress.set(50)
    progress.set(100, total=400)
    progress.close()
    progress.close()  # a second close prints nothing
    assert stream.getvalue().splitlines() == [
        "embed: 50 images, 25.0 images/s",
        "embed: 100/400 images (25.0%), 50.0 images/s, done in 2 s"]


def test_plain_progress_shows_no_rate_before_anything_is_done():
    clock, stream = _Clock(), io.StringIO()
    with Progress(desc="embed", stream=stream, interval=5.0, clock=clock) as progress:
        clock.now = 6.0
        progress.set(0, total=300)  # a slow start (workers loading the model)
        clock.now = 12.0
        progress.set(60)
    assert stream.getvalue().splitlines() == [
        "embed: 0/300 images (0.0%), starting",
        "embed: 60/300 images (20.0%), 5.0 images/s, ETA 48 s",
        "embed: 60/300 images (20.0%), 5.0 images/s, done in 12 s"]


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    with Progress(10, desc="evaluate", stream=stream, interval=0.0, disable=True) as progress:
        progress.update(10)
    assert stream.getvalue() == ""


def test_terminal_progress_draws_a_tqdm_bar():
    stream = _Terminal()
    with Progress(4, desc="k-fold", unit="folds", stream=stream) as progress:
        progress.update(4)
    assert "k-fold: 100%" in stream.getvalue()
    assert "4/4" in stream.getvalue()


def test_track_yields_every_item_and_counts_units():
    clock, stream = _Clock(), io.StringIO()
    batches = [[1, 2], [3], [4, 5, 6]]
    seen = []
    for batch in track(iter(batches), desc="evaluate", unit="images", total=6, count=len,
                       stream=stream, clock=clock):
        clock.now += 1.0
        seen.append(batch)
    assert seen == batches
    assert stream.getvalue() == "evaluate: 6/6 images (100.0%), 2.0 images/s, done in 3 s\n"
