"""Progress that reaches a log file: plain lines where stderr is not a terminal."""

import io
import logging

import pytest

from lipdp import progress


class Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


@pytest.fixture
def lines(caplog):
  caplog.set_level(logging.INFO, logger="lipdp.progress")
  logger = logging.getLogger("lipdp")
  propagate, logger.propagate = logger.propagate, True  # the console may have turned it off
  yield lambda: [r.getMessage() for r in caplog.records if r.name == "lipdp.progress"]
  logger.propagate = propagate


def test_a_line_every_tenth_of_the_run_with_rate_and_time_left(lines):
  clock = Clock()
  bar = progress.ProgressLines(1000, what="train", clock=clock)
  for _ in range(1000):
    clock.now += 0.1  # 10 steps/s: a tenth of the run takes 10 s
    bar.update(1)
  bar.close()
  got = lines()
  assert len(got) == 10
  assert got[0] == "train: step 100/1,000 (10%), 10 steps/s, 1 min 30 s left"
  assert got[-1].startswith("train: step 1,000/1,000 (100%)")
  assert got[-1].endswith("0.0 s left")


def test_a_line_every_30_s_when_a_tenth_takes_longer(lines):
  clock = Clock()
  bar = progress.ProgressLines(100, what="train", clock=clock)
  for _ in range(25):
    clock.now += 4.0  # a tenth (10 steps) takes 40 s
    bar.update(1)
  got = lines()
  # At 32 s (8 steps, the 30 s rule), 40 s (10 steps), 72 s (18 steps), 80 s (20 steps).
  assert [line.split(" (")[0] for line in got] == [
    "train: step 8/100",
    "train: step 10/100",
    "train: step 18/100",
    "train: step 20/100",
  ]


def test_a_short_run_prints_little_and_a_resumed_one_counts_from_its_step(lines):
  clock = Clock()
  bar = progress.ProgressLines(30, what="train", clock=clock)
  for _ in range(30):
    clock.now += 0.1  # three seconds in all: below the smallest gap between lines
    bar.update(1)
  assert lines() == []
  resumed = progress.ProgressLines(100, initial=50, what="train", clock=clock)
  for _ in range(10):
    clock.now += 1.0
    resumed.update(1)
  assert lines() == ["train: step 60/100 (60%), 1 steps/s, 40.0 s left"]


def test_stderr_picks_a_bar_on_a_terminal_and_lines_otherwise():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  assert isinstance(progress.for_stderr(10, stream=io.StringIO()), progress.ProgressLines)
  bar = progress.for_stderr(10, stream=Terminal())
  assert not isinstance(bar, progress.ProgressLines) and hasattr(bar, "update")
  bar.close()
