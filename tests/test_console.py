"""What a sweep prints while it runs (mosaic.console): the plain progress, one line per run."""

from __future__ import annotations

import io

from mosaic.console import console_progress
from mosaic.exec.wire.events import Event


def test_plain_progress_prints_one_line_per_run() -> None:
    stream = io.StringIO()
    with console_progress(plain=True, stream=stream) as on_event:
        on_event(Event("cluster", total=2, text="local cluster tcp://127.0.0.1:1", link="http://127.0.0.1:8787/status"))
        on_event(Event("start", sweep_id=1, total=2, text="/tmp/store"))
        on_event(Event("finished", run_id=1, status="done", text="train_loss=1.000E-01"))
        on_event(Event("finished", run_id=2, status="error", text="RuntimeError: boom"))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "cluster: 2 workers, dashboard http://127.0.0.1:8787/status"
    assert "[run finished] 1 done 1/2" in lines[2] and "ETA" in lines[2]
    assert lines[3].endswith("RuntimeError: boom") and "2/2" in lines[3]
