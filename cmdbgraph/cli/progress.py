"""What ``cmdbgraph import associations`` shows while it works.

On a terminal, two animated lines (each fits 80 columns): a bar with the percentage, rows per
second and the time left; then rows done, created, already present and failed. Anywhere else
(a pipe, a log file, CI), the same figures on one plain line, with no control codes, at every
tenth of the file and at least every 5 s. The last frame is drawn from the final figures, so a
finished import shows 100 %.
"""

from __future__ import annotations

import time
from typing import Literal

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cmdbgraph.services.transfer import ImportReport

Mode = Literal["live", "plain", "off"]
PLAIN_INTERVAL = 5.0  # seconds between two plain lines


class ImportProgress:
    def __init__(
        self,
        console: Console,
        *,
        total: int | None,
        mode: Mode,
        interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.console = console
        self.total = total or None  # bytes of the file, when known (not on standard input)
        self.mode = mode
        self.interval = interval
        self.started = time.monotonic()
        self._printed = self.started
        self._lines = 0  # plain lines printed
        self._tenth = 0  # of the file, at the last plain line
        self._live: Live | None = None

    def __enter__(self) -> ImportProgress:
        self.started = self._printed = time.monotonic()
        if self.mode == "live":
            self._live = Live(
                self.frame(ImportReport()),
                console=self.console,
                transient=False,
                refresh_per_second=4,
            )
            self._live.start()
        return self

    def update(self, report: ImportReport) -> None:
        if self._live is not None:
            self._live.update(self.frame(report))
        elif self.mode == "plain":
            tenth = int(10 * report.position / self.total) if self.total else 0
            # (not at 100 %: that line is the last one, with the time the import took)
            due = tenth > self._tenth or time.monotonic() - self._printed >= self.interval
            if due and tenth < 10:
                self._printed, self._tenth = time.monotonic(), tenth
                self._lines += 1
                self.console.print(f"importing: {self.line(report)}", highlight=False)

    def finish(self, report: ImportReport, *, complete: bool) -> None:
        """The last frame: at 100 % when the whole file was read (``complete``)."""
        if complete and self.total:
            report.position = self.total
        if self._live is not None:
            self._live.update(self.frame(report, final=True), refresh=True)
            self._live.stop()
            self._live = None
        elif self.mode == "plain" and self._lines:  # (a short import has only its summary)
            self.console.print(f"importing: {self.line(report, final=True)}", highlight=False)

    def __exit__(self, *exc_info) -> None:
        if self._live is not None:  # stopped by an error: leave the last frame as it was
            self._live.stop()
            self._live = None

    def frame(self, report: ImportReport, *, final: bool = False) -> Group:
        """The live display: the bar and its figures, then the counts (but in the last frame,
        which the command's summary of the counts follows)."""
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=self.total, completed=report.position, width=30),
            Text(" · ".join(self.pace(report, final=final))),
        )
        return Group(bar) if final else Group(bar, Text(self.counts(report)))

    def line(self, report: ImportReport, *, final: bool = False) -> str:
        """The plain display: everything on one line."""
        return " · ".join([*self.pace(report, final=final), self.counts(report)])

    def counts(self, report: ImportReport) -> str:
        return counts(report)

    def pace(self, report: ImportReport, *, final: bool = False) -> list[str]:
        """The percentage (when the size is known), rows per second and the time left (or,
        at the end, taken)."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        parts = []
        if self.total:
            parts.append(f"{min(100.0, 100 * report.position / self.total):3.0f}%")
        if elapsed >= 1 or final:
            parts.append(f"{report.rows / elapsed:.0f} rows/s")
        if final:
            parts.append(f"took {duration(elapsed)}")
        elif self.total and report.position and elapsed >= 1:
            left = (self.total - report.position) / (report.position / elapsed)
            parts.append(f"ETA {duration(left)}")
        elif self.total:
            parts.append("ETA …")
        return parts


def counts(report: ImportReport) -> str:
    """``100 rows: 97 created, 2 already present, 1 failed``."""
    return (
        f"{report.rows} row{'' if report.rows == 1 else 's'}: {report.created} created, "
        f"{report.already_present} already present, {report.failed} failed"
    )


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
