"""The store: the only package that knows how results are kept (paths, writer, readers).

- ``layout``     every path and file name (tables, partitions, control, state, run files,
                 the last-store memory)
- ``files``      ``atomic_write``, used by every writer of the project
- ``status``     ``RunStatus`` and which statuses count as failed
- ``writer``     ``Store``: append, id allocation, compaction
- ``records``    the rows a sweep writes (sweep row, planned runs, buffered updates)
- ``session``    DuckDB sessions with the views (``mosaic query``)
- ``legacy_db``  reading a database of the original tool (sqlite)
- ``selection``  run selection flags (-id, -request, -param_name_and_value...)
- ``reader``     ``Reader``: the typed read interface, over a store or an original database

Submodules are imported explicitly, so a light one (``files``, ``layout``) stays light.
"""
