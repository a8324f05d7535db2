"""Progress of a long loop on stderr: a bar on a terminal, plain lines in a log file.

`for_stderr(total, initial, what)` gives a tqdm bar when stderr is a terminal; otherwise (a
cluster job, CI, `nohup`, a redirected log) a `ProgressLines`, which logs a plain line through
the logger "lipdp" (`lipdp.console.progress_line`: step, rate, time left) each time the loop
has advanced another tenth of its steps, or 30 s after the last line, whichever comes first,
but never twice within a few seconds. Both take `update(n)`, `set_postfix(...)` and `close()`,
so the loop (`lipdp.training.fit`) does not care which it has.
"""

import logging
import sys
import time
from typing import Callable, Optional

from tqdm import auto as tqdm

from lipdp import console

log = logging.getLogger("lipdp.progress")

# A line at least this often (seconds), and at every tenth of the steps.
EVERY_S = 30.0
FRACTION = 0.1
# ...but never two lines closer than this (a short run prints little or nothing).
MIN_GAP_S = 5.0


class ProgressLines:
  """Plain progress lines for a non-terminal stderr (module docstring).

  Args:
    total: the loop's last step.
    initial: the step it starts from (a resumed run).
    what: the loop's name, first on each line.
    clock: seconds, monotonic (a test passes its own).
  """

  def __init__(
    self,
    total: int,
    initial: int = 0,
    what: str = "train",
    clock: Callable[[], float] = time.monotonic,
  ):
    self.total, self.step, self.what, self._clock = int(total), int(initial), what, clock
    self._start_step = self.step
    self._start = self._last = clock()
    self._first = True
    self._stride = max(1, int(round(FRACTION * self.total)))
    self._next_step = (self.step // self._stride + 1) * self._stride

  def update(self, n: int = 1) -> None:
    self.step += n
    now = self._clock()
    if self._first:  # the first step compiles: the rate counts the steps after it
      self._first = False
      self._start, self._start_step = now, self.step
    due = self.step >= self._next_step or now - self._last >= EVERY_S
    if due and now - self._last >= MIN_GAP_S:
      log.info("%s", console.progress_line(self.what, self.step, self.total, *self._rate(now)))
      self._last = now
    if self.step >= self._next_step:
      self._next_step = (self.step // self._stride + 1) * self._stride

  def _rate(self, now: float):
    elapsed = now - self._start
    done = self.step - self._start_step
    if elapsed <= 0 or done <= 0:
      return None, None
    rate = done / elapsed
    return rate, max(self.total - self.step, 0) / rate

  def set_postfix(self, **kwargs) -> None:
    """Ignored: the lines show progress only (a DP-SGD run's statistics stay private)."""
    del kwargs

  def close(self) -> None:
    pass


def for_stderr(total: int, initial: int = 0, what: str = "train", stream: Optional[object] = None):
  """A tqdm bar if `stream` (default sys.stderr) is a terminal, else `ProgressLines`."""
  stream = sys.stderr if stream is None else stream
  if getattr(stream, "isatty", lambda: False)():
    return tqdm.tqdm(total=total, initial=initial, desc=what, unit="step", dynamic_ncols=True)
  return ProgressLines(total, initial, what)
