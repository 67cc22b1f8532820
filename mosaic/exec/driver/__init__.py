"""The driver side: plans sweeps, drives them on a cluster, records them, and steers them from
outside (status, pause, resume). It never imports torch (a test imports each module and
checks), so a sweep's driver stays light while its workers train.

- :mod:`~.commands`: ``run``, ``resume``, ``rerun``: plan the runs, make every check once;
- :mod:`~.sweep`: one sweep's life on the cluster (submit, collect, record, pause, Ctrl-C);
- :mod:`~.ledger`: the one writer of runs rows (a final status is never overwritten);
- :mod:`~.policy`: what to do with a run whose worker died (pure);
- :mod:`~.batching`: how many short runs share a task (pure);
- :mod:`~.live`: what workers announce, live: epochs become history rows, starts are tracked;
- :mod:`~.heartbeat`: the file that says a driver is alive, read and written in one place;
- :mod:`~.status`, :mod:`~.pause`, :mod:`~.resume`: watching, pausing and finishing sweeps;
- :mod:`~.summary`: what a sweep did, as data and as text.

It may import the cluster and wire packages, :mod:`mosaic.store`, :mod:`mosaic.config`,
:mod:`mosaic.sweep` and :mod:`mosaic.errors`; never the training package or
:mod:`mosaic.analysis`.
"""
