"""Ingest: what PipeRun pushes, checked and stored.

`webhook.py` receives deliveries, `ingestor.py` checks and stores them (the webhook and
`talkgate ingest` alike), `payload.py` is the lenient model of PipeRun's payload, and
`workers.py` spreads `talkgate ingest`'s checks over processes.
"""
