"""The GraphQL edge: requests in, answers out.

`endpoint.py` is where HTTP requests enter: `admission.py` lets them in, `cached_answers.py`
answers from the response cache (`response_cache.py`), `view.py` runs the rest;
`websocket.py` speaks graphql-transport-ws. `schema_assembly.py` builds the schema and
`typed_errors.py` types its errors. Around them `limits.py`, `parsing.py`, `persisted.py`,
`over_http.py`, `coalesced_streams.py`, and the `execution` package, the fast execution path.
"""
