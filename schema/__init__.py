"""GraphQL types of talkgate: what clients can ask for. No I/O happens here."""
