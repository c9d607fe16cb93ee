"""What the generator changes in MLflow's scoring server: two malformed requests that
``mlflow models serve`` answers with an internal error get a 4xx instead."""

from __future__ import annotations

from .request import bad_request


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
            return decode(json_input)
        except RecursionError:
            raise bad_request("the JSON is nested too deeply") from None

    ss.invocations, ss._decode_json_input = checked_invocations, checked_decode
    ss._lshgan_hardened = True
    return True
