"""The local store, no daemon: images (``store.py``), working containers
(``containers.py``), moving images to and from other transports (``transports.py``),
manifest lists (``manifests.py``) and integrity checks (``check.py``).

The package exports the store itself; the other modules are imported by name.
"""

from builder.reference import normalize_name
from builder.store.store import ImageRecord, Store, split_name

__all__ = ["ImageRecord", "Store", "normalize_name", "split_name"]
