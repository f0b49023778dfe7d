"""`connector`: the operator's console for a deployed connector (connect, ping, status, audit, replay, preview).

The commands that run the connector on this machine (``demo``, ``local``, ``sandbox``) are here too, so there is one
entry point, but what they run lives in ``connector_local`` (the embedded stack and the sandboxes). The Lambda
functions never import this package.
"""
