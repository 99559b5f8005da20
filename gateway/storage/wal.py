"""What a SQLite file in WAL mode shows of its commits without a statement: the header of its
wal-index (the `-shm` file beside it).

Every connection that commits to a WAL database, in any process, rewrites the two copies of
the wal-index header at the start of the `-shm` file before its commit returns: among its
fields a counter advanced by each transaction, the WAL's last frame and its salts
(https://www.sqlite.org/walformat.html, "The WAL-Index Header"). While those bytes stay as
they were, no commit has ended since they were read. Reading them from a shared mapping
takes no lock and no system call; a statement takes both (a read transaction locks slots of
the same file). On a cached answer (bench.instructions, W1-warm, which counts no system
call's work in the kernel) that is 36,300 instructions fewer of 320,000.
"""

from __future__ import annotations

import mmap
import os
import sqlite3

# The two 48-byte copies of the header (WalIndexHdr), as every commit writes them.
HEADER_BYTES = 96


class WalIndexHeader:
    """The wal-index header of the database `connection` has open, mapped read-only.

    Open it only through a connection that has read in WAL mode and stays open as long as
    this does: SQLite truncates the `-shm` file (which would make a mapping of it fault)
    only when it opens the file with no other connection on it.
    """

    def __init__(self, mapping: mmap.mmap) -> None:
        self._mapping = mapping

    @classmethod
    def of(cls, connection: sqlite3.Connection, path: str) -> WalIndexHeader | None:
        """The header of the file at `path`, open in `connection`; None when the file is
        not in WAL mode or has no `-shm` file to map (another VFS, an exclusive lock)."""
        mode = connection.execute("PRAGMA journal_mode").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            return None
        try:
            fd = os.open(f"{path}-shm", os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < HEADER_BYTES:
                return None
            return cls(mmap.mmap(fd, HEADER_BYTES, access=mmap.ACCESS_READ))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)  # the mapping keeps the file

    def read(self) -> bytes:
        """The header's bytes now: the same bytes, no commit in between."""
        return self._mapping[:HEADER_BYTES]

    def close(self) -> None:
        self._mapping.close()
