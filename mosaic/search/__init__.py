"""Search strategies: which runs of a grid are worth their planned epochs.

``[SEARCH] strategy = grid`` (the default) trains every run to its planned epochs.
``strategy = halving`` is successive halving over the grid, built so that its decisions can
be trusted and undone:

- :mod:`~mosaic.search.spec`: the ``[SEARCH]`` section, read and checked like every other;
- :mod:`~mosaic.search.halving`: the rungs and the decisions. A pipeline (a dataset and a
  model, :func:`mosaic.sweep.dataset_and_model`) is judged on its replicates together, only
  against the pipelines of its own dataset, at synchronous rungs: every live pipeline of a
  dataset reaches the rung, then the cut. The same values give the same decisions whatever
  the worker count or arrival order, and a resumed sweep rebuilds the state from the
  ``decisions`` table. Pure Python: the driver imports it without loading torch;
- :mod:`~mosaic.search.replay`: what halving would have decided on a finished full-grid store.

It may import :mod:`mosaic.config`, :mod:`mosaic.sweep`, :mod:`mosaic.store`,
:mod:`mosaic.errors` and (replay only) :mod:`mosaic.analysis`; never :mod:`mosaic.exec`.
"""
