"""Former home of the serving code, now :mod:`lshgan.mlops.serving` (one concern a module).

Kept only because the committed benchmark ``bench/serving.py`` imports these names from
here (and sets :data:`NPZ_COMPRESSED` to compare zip-deflated payloads); new code imports
:mod:`lshgan.mlops.serving`.  Delete this module once the benchmark does.  Models logged
before the split carry their own copy of the old module as their code, so they do not need
it to load.
"""

from __future__ import annotations

from .serving import encoding as _encoding
from .serving.client import fetch_genes
from .serving.encoding import frame_to_anndata, genes_sha1

#: Whether :func:`encode_npz` zip-deflates (the benchmark flips it).
NPZ_COMPRESSED = _encoding.NPZ_COMPRESSED


def encode_npz(X) -> str:
    """:func:`lshgan.mlops.serving.encoding.encode_npz`, compressed as :data:`NPZ_COMPRESSED` says."""
    return _encoding.encode_npz(X, compressed=NPZ_COMPRESSED)


__all__ = ["NPZ_COMPRESSED", "encode_npz", "fetch_genes", "frame_to_anndata", "genes_sha1"]
