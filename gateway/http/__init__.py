"""The HTTP application: routes, middleware and the pages served beside GraphQL.

`app.py` builds the app and its lifespan; `middleware.py`, `compression.py` and `cors.py` wrap
every request; `request_body.py` reads bodies within a limit; `explorer.py` and `launch.py`
serve pages; `server.py` runs it all under uvicorn.
"""
