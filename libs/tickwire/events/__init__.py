"""The one event contract between tickwire services: event kinds and their rules
(`kinds.py`, `rules.py`, `symbols.py`), record formats (`wire.py`), the partitioner
(`partitioner.py`), CloudEvents headers (`headers.py`) and the input guard
(`parsing.py`). Services use these and never restate them."""
