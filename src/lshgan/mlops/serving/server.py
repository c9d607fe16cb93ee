"""What the generator changes in MLflow's scoring server: two malformed requests that
``mlflow models serve`` answers with an internal error get a 4xx instead, and a request
column the model does not know (a misspelled ``cell_type``) is refused instead of dropped."""

from __future__ import annotations

from .request import INPUT_COLUMNS, bad_request


def request_columns(decoded) -> list:
    """The column names a decoded JSON request names (``dataframe_split``,
    ``dataframe_records`` or ``inputs``, MLflow's request forms); [] for anything else,
    which MLflow's own parsing refuses."""
    if not isinstance(decoded, dict):
        return []
    if isinstance(decoded.get("dataframe_split"), dict):
        cols = decoded["dataframe_split"].get("columns")
        return list(cols) if isinstance(cols, list) else []
    rows = decoded.get("dataframe_records", decoded.get("inputs"))
    if isinstance(rows, dict):
        return list(rows)
    if isinstance(rows, list):
        return list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r))
    return []


def harden_scoring_server() -> bool:
    """Answer two malformed requests with 4xx where MLflow's scoring server answers 500.

    ``mlflow models serve`` (3.x) fails with an internal error on a request without a
    ``Content-Type`` header (it splits ``None``) and on JSON nested deeper than Python's
    recursion limit (``RecursionError`` escapes its decoder).  When the server has loaded
    this model, its module is wrapped so that the first gets 415 and the second 400, like
    every other bad request; nothing else changes.  Returns whether it was applied (only
    inside a server process).
    """
    import sys

    ss = sys.modules.get("mlflow.pyfunc.scoring_server")
    if ss is None or getattr(ss, "_lshgan_hardened", False):
        return False
    if not all(hasattr(ss, name) for name in ("invocations", "_decode_json_input", "InvocationsResponse")):
        return False  # another MLflow layout: leave it alone
    invocations, decode = ss.invocations, ss._decode_json_input

    def checked_invocations(data, content_type, *args, **kwargs):
        if not content_type:
            return ss.InvocationsResponse(response="missing Content-Type header: send application/json",
                                          status=415, mimetype="text/plain")
        return invocations(data, content_type, *args, **kwargs)

    def checked_decode(json_input):
        try:
            decoded = decode(json_input)
        except RecursionError:
            raise bad_request("the JSON is nested too deeply") from None
        unknown = [c for c in request_columns(decoded) if c not in INPUT_COLUMNS]
        if unknown:  # MLflow's schema check would drop them with a server-side warning only
            raise bad_request(f"unknown request column(s) {', '.join(map(str, unknown[:5]))}; "
                              f"the columns are {', '.join(INPUT_COLUMNS)}")
        return decoded

    ss.invocations, ss._decode_json_input = checked_invocations, checked_decode
    ss._lshgan_hardened = True
    return True
