"""Everything that runs training, in four packages, one per side of the wire.

Read top-down: :mod:`~mosaic.exec.driver` plans and drives sweeps (no torch);
:mod:`~mosaic.exec.cluster` is where runs execute (the only importer of ``distributed``);
:mod:`~mosaic.exec.wire` is what crosses between the driver and the workers (no torch, no
``distributed``); :mod:`~mosaic.exec.training` is the worker side (the only importer of
torch). Each package's docstring says what it owns and what it may import.
"""
