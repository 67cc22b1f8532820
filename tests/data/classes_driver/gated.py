"""The tutorial's OR dataset behind a gate: a run stops before its third epoch until the test
lets it through, so that a test can act while runs are known to be training (a file barrier).

Its second epoch first waits a little over the worker's send interval
(``mosaic.exec.cluster.announcer.SEND_EVERY_S``), so that the worker's announcer sends the
first two epochs at the end of the second: a run stopped at the gate has published its
epochs so far (a run that stopped right after its first would hold it back unsent).

``gate`` is a folder the test owns. A run arriving at the gate goes through when the file
``open`` is there; else it takes one ``pass-*`` file if one is left (removing a file is atomic:
one run per file); else it writes ``waiting-<pid>-<n>`` and waits for ``open``. It waits
``timeout`` seconds at most and then trains on (the test waiting on it has failed by then).
"""

import os
import time
from pathlib import Path

from dataset import dataset_OR  # the tutorial's, copied beside this file by the sweep_dir fixture


class _Gated:
    """Iterates like ``loader``; its third pass (the run's third epoch) first goes through the gate."""

    def __init__(self, loader, gate, timeout, at_pass=3):
        self.loader = loader
        self.gate = Path(gate)
        self.timeout = timeout
        self.at_pass = at_pass
        self.passes = 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.passes += 1
        if self.passes == self.at_pass:
            self._wait()
        elif self.passes == 2:
            from mosaic.exec.cluster.announcer import SEND_EVERY_S

            time.sleep(SEND_EVERY_S + 0.05)  # the epochs so far go out when this one ends
        return iter(self.loader)

    def _wait(self):
        if (self.gate / "open").exists():
            return
        for ticket in sorted(self.gate.glob("pass-*")):
            try:
                ticket.unlink()
            except FileNotFoundError:  # another run took it
                continue
            return
        (self.gate / f"waiting-{os.getpid()}-{time.monotonic_ns()}").touch()
        deadline = time.monotonic() + self.timeout
        while not (self.gate / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


class dataset_gated(dataset_OR):
    """The tutorial's ``dataset_OR`` (beside this file in a test's sweep folder), its train loader gated."""

    def __init__(self, batch_size, data_size, train_prop, gate, timeout=240):
        super().__init__(batch_size, data_size, train_prop)
        self.gate = gate
        self.timeout = float(timeout)

    def prepare(self, data, run_info, module_info):
        train_loader, test_loader = super().prepare(data, run_info, module_info)
        return _Gated(train_loader, self.gate, self.timeout), test_loader


class dataset_gated_after(dataset_OR):
    """The tutorial's ``dataset_OR``; the runs built after the first ``after`` (counted in the
    gate folder, one file each) wait at the gate before their first epoch. A halving sweep
    builds a run's data again at each rung, so a test gates a rung this way."""

    def __init__(self, batch_size, data_size, train_prop, gate, after, timeout=240):
        super().__init__(batch_size, data_size, train_prop)
        self.gate = gate
        self.after = int(after)
        self.timeout = float(timeout)

    def prepare(self, data, run_info, module_info):
        train_loader, test_loader = super().prepare(data, run_info, module_info)
        (Path(self.gate) / f"built-{os.getpid()}-{time.monotonic_ns()}").touch()
        if len(list(Path(self.gate).glob("built-*"))) <= self.after:
            return train_loader, test_loader
        return _Gated(train_loader, self.gate, self.timeout, at_pass=1), test_loader
