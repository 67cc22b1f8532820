"""The worker side: everything that trains a run, and the only package that imports torch.

A worker's task enters through :func:`mosaic.exec.cluster.entry.execute_batch`, which calls
:func:`~mosaic.exec.training.run.execute_run` for each run. From there:

- :mod:`~.user_classes` imports the user's class files and builds their objects, injecting
  constructor parameters by name;
- :mod:`~.build` seeds the run and builds its data, chain of models, loss and optimizer;
- :mod:`~.loop` trains the chain epoch by epoch (:mod:`~.epoch` keeps each batch's loss and
  accuracy counts; :mod:`~.loss` aligns prediction and target shapes; :mod:`~.accuracy`
  holds the accuracy rules), calling :mod:`~.callbacks`;
- :mod:`~.checkpoints` saves and restores everything needed to continue a run
  (:mod:`~.tensor_pack` packs the optimizer state); :mod:`~.metrics` summarizes a history.

It may import the wire package, :mod:`mosaic.store`, :mod:`mosaic.config` and
:mod:`mosaic.errors`; never the driver or cluster packages (the driver must not load torch).
"""
