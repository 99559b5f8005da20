"""The GraphQL edge: requests in, answers out.

`edge.py` assembles the schema and runs the endpoint; around it `limits.py`, `parsing.py`,
`persisted.py`, `response_cache.py`, `over_http.py`, `coalesced_streams.py`, and
`execution.py`, the fast execution path.
"""
