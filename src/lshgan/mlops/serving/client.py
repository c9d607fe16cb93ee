"""A client of a served generator over HTTP: the scoring endpoint, a POST, and the
model's genes (asked for once, for ``npz`` answers; example: :mod:`lshgan.mlops.serving`).
"""

from __future__ import annotations

import json

from .encoding import CELL_TYPE_COLUMN


def invocations_url(url: str) -> str:
    """``url`` (a server root or its ``/invocations``) as the scoring endpoint."""
    url = url.rstrip("/")
    return url if url.endswith("/invocations") else url + "/invocations"


def post_invocations(url: str, body: dict, *, timeout: float = 120.0):
    """POST ``body`` as JSON to the scoring endpoint of ``url``; the decoded JSON answer.

    Raises urllib's errors (``HTTPError`` for 4xx/5xx, ``URLError`` when unreachable).
    """
    import urllib.request

    req = urllib.request.Request(invocations_url(url), data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def fetch_genes(url: str, *, timeout: float = 120.0) -> list[str]:
    """The genes (in order) of the model served at ``url``: the columns of a one-cell
    ``columns`` answer (about 20 bytes per gene; ask once per model, then use ``npz``)."""
    rows = post_invocations(url, {"dataframe_split": {"columns": ["n_cells", "encoding"],
                                                      "data": [[1, "columns"]]}},
                            timeout=timeout)["predictions"]
    return [g for g in rows[0] if g != CELL_TYPE_COLUMN]
