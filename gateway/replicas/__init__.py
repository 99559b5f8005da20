"""What several processes of one deployment share: events, and state through Redis.

`pubsub.py` publishes change events in-process; `redis_shared.py` shares events, rate
limits, tickets, persisted queries, recordings and answers through Redis; `workers.py`
runs `serve --workers N`, whose processes exchange events through `siblings.py`.
"""
