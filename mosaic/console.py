"""The commands' terminal output for sweeps: the one place besides cli.py that writes to a terminal.

The driver reports what happens through ``on_event(Event)``
(:class:`~mosaic.exec.wire.events.Event`); :func:`console_progress` (used by cli.py) turns
events into a rich progress bar on stderr, or one line per finished run;
:func:`console_watch` shows ``mosaic status --watch`` in place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from mosaic.exec.wire.events import Event
from mosaic.store.status import FAILED, RunStatus

__all__ = ["Event", "console_progress", "console_watch"]


class _Tally:
    def __init__(self) -> None:
        self.total = self.done = self.failed = self.stopped = 0
        self.running: set[int] = set()

    def update(self, event: Event) -> None:
        if event.kind == "start":
            self.total += event.total
        elif event.kind == "running" and event.run_id is not None:
            self.running.add(event.run_id)
        elif event.kind == "finished" and event.run_id is not None:
            self.running.discard(event.run_id)
            if event.status == RunStatus.DONE:
                self.done += 1
            elif event.status == RunStatus.STOPPED:
                self.stopped += 1
            elif event.status in FAILED:
                self.failed += 1
        elif event.kind == "paused":
            self.total -= event.total

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.stopped


@contextmanager
def console_progress(plain: bool = False, stream: TextIO | None = None) -> Iterator[Callable[[Event], None]]:
    """Yield an ``on_event`` callback that renders a sweep on ``stream`` (stderr).

    A rich progress bar (done / error / running counts and ETA) on a terminal; one line per
    finished run when ``plain`` or when the stream is not a terminal.
    """
    stream = stream or sys.stderr
    if plain or not stream.isatty():
        yield _plain(stream)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=stream)
    tally = _Tally()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/] {task.fields[stopped]} stopped "
                   "{task.fields[running]} running"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("runs", total=None, done=0, failed=0, stopped=0, running=0)

        def on_event(event: Event) -> None:
            tally.update(event)
            if event.kind == "cluster":
                bar.console.print(f"cluster: {event.total} workers, {_where(event)}")
            elif event.kind == "warning":
                bar.console.print(f"[yellow]warning:[/] {event.text}")
            elif event.kind == "finished" and event.status in FAILED:
                bar.console.print(f"[red]run {event.run_id} {event.status}:[/] {event.text}")
            elif event.kind in ("paused", "interrupted", "decision"):
                bar.console.print(f"{event.kind}: {event.text}")
            bar.update(
                task,
                total=tally.total or None,
                completed=tally.finished,
                done=tally.done,
                failed=tally.failed,
                stopped=tally.stopped,
                running=len(tally.running),
            )

        yield on_event


def _plain(stream: TextIO) -> Callable[[Event], None]:
    tally = _Tally()
    started = time.monotonic()

    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    def on_event(event: Event) -> None:
        nonlocal started
        tally.update(event)
        if event.kind == "cluster":
            write(f"cluster: {event.total} workers, {_where(event)}")
        elif event.kind == "start":
            started = time.monotonic()
            write(f"sweep {event.sweep_id}: {event.total} runs -> {event.text}")
        elif event.kind == "finished":
            elapsed = time.monotonic() - started
            eta = ""
            if tally.finished and tally.total > tally.finished:
                eta = f", ETA {elapsed / tally.finished * (tally.total - tally.finished):.0f}s"
            write(f" [run finished] {event.run_id} {event.status} {tally.finished}/{tally.total}{eta}  {event.text}")
        elif event.kind in ("paused", "interrupted", "warning", "decision"):
            write(f"{event.kind}: {event.text}")

    return on_event


def _where(event: Event) -> str:
    where = f"dashboard {event.link}" if event.link else event.text
    return where + (f" (runs: {event.page})" if event.page else "")


def console_watch(reports: Iterable[Any], stream: TextIO | None = None) -> None:
    """Show each report (``render()``) in place until ``reports`` ends (``mosaic status --watch``).

    A rich live display on a terminal; otherwise each report is written in turn.
    """
    stream = stream or sys.stdout
    if not stream.isatty():
        for report in reports:
            stream.write(report.render() + "\n\n")
            stream.flush()
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(Text(""), console=Console(file=stream), auto_refresh=False, vertical_overflow="visible") as live:
        for report in reports:
            live.update(Text(report.render()), refresh=True)
