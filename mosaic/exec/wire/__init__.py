"""What crosses the wire between the driver and the workers, and nothing else.

Both sides import this package; it imports neither torch nor ``distributed`` (a test checks),
so the driver can build tasks and read events without loading either, and the scheduler can
read events without torch. It owns:

- :mod:`~mosaic.exec.wire.task`: :class:`RunTask` (what a worker needs to train one run) and
  :class:`RunOutcome` (what it sends back), a run's seed, a worker's label;
- :mod:`~mosaic.exec.wire.events`: :class:`RunEvent`, the one record a worker publishes about
  its runs (start, epoch, end), and the names of task keys and event topics;
- :mod:`~mosaic.exec.wire.callbacks`: :class:`Callback`, the training hook a task may carry;
- :mod:`~mosaic.exec.wire.sources`: the user's class files, shipped with every task;
- :mod:`~mosaic.exec.wire.transfer`: where a worker writes a run's files when it shares no disk.

It may import :mod:`mosaic.store`, :mod:`mosaic.config` and :mod:`mosaic.errors`; never the
driver, cluster or training packages.
"""
