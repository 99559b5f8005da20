"""Ingest: what PipeRun pushes, checked and stored.

`webhook.py` receives deliveries, `ingestor.py` checks and stores them (the webhook and
`talkgate ingest` alike), `payload.py` is the lenient model of PipeRun's payload (its
coercers of dirty values in `coercers.py`, compiled into the validators ingest runs in
`validation.py`); `files.py` is `talkgate ingest`'s reading of files, and `workers.py`
spreads its checks over processes.
"""
