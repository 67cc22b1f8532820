"""Where runs execute: the embedded cluster or a remote scheduler; the only package that
imports ``distributed``.

- :mod:`~.workers`: the local worker layout (:class:`~.workers.WorkerPlan`) and the GPU check;
- :mod:`~.local` and :mod:`~.worker_start`: the embedded ``LocalCluster``, its workers forked
  from one preloaded server where the platform allows;
- :mod:`~.connect`: :func:`~.connect.open_cluster` and :class:`~.connect.Cluster`, the one
  way a task reaches a worker;
- :mod:`~.plugins`: the worker plugins (a worker's setup, a sweep's paths and keys);
- :mod:`~.entry`: the worker's entry point, :func:`~.entry.execute_batch`;
- :mod:`~.announcer`: a worker's channel to its sweep's topic;
- :mod:`~.page`: the scheduler's Mosaic page (the sweep's live view: a scheduler plugin
  filling :mod:`mosaic.live`'s board) and the lazily built Dask dashboard.

It may import the wire package, :mod:`mosaic.config`, :mod:`mosaic.errors` and the live
view's model and routes (:mod:`mosaic.live`); the training package only on a worker, when a
task runs (the driver imports this package and must not load torch); never the driver package.
"""
