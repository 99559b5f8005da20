"""Root fields and per-request batch loaders; they reach services through info.context."""
