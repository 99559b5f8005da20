"""Words for search, the same in every store: folded for case and accents, split whole."""

from __future__ import annotations

import re
import unicodedata

from gateway.errors import BadUserInput

_WORD = re.compile(r"\w+", re.UNICODE)
# Letters and digits of any script: what SQLite's unicode61 tokenizer keeps in a token.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def search_key(text: str | None) -> str | None:
    """`text` folded for search: case and accents ignored ("JOÃO" and "joao" are equal)."""
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# The most a text filter and a customer search may hold. Each word of a text filter is one
# more condition of the store's query: thousands of them overflowed SQLite's expression tree
# (reported as the store being unavailable), and a search past 50,000 bytes SQLite's LIKE.
MAX_TEXT_WORDS = 32
MAX_TEXT_CHARS = 1000


def query_words(text: str) -> list[str]:
    """The words of a text filter, each to be found whole; BadUserInput when there is none,
    or more than MAX_TEXT_WORDS words or MAX_TEXT_CHARS characters."""
    if len(text) > MAX_TEXT_CHARS:
        raise BadUserInput(f"the text filter is longer than {MAX_TEXT_CHARS} characters")
    words = _WORD.findall(text)
    if not words:
        raise BadUserInput("the text filter holds no word")
    if len(words) > MAX_TEXT_WORDS:
        raise BadUserInput(f"the text filter holds more than {MAX_TEXT_WORDS} words")
    return words


def bounded_search(search: str) -> str:
    """A customer search, stripped; BadUserInput past MAX_TEXT_CHARS characters."""
    if len(search) > MAX_TEXT_CHARS:
        raise BadUserInput(f"the search is longer than {MAX_TEXT_CHARS} characters")
    return search.strip()


def match_words(text: str) -> list[str]:
    """FTS5 phrases for each word of `text`, quoted so no query syntax gets through."""
    return ['"' + w.replace('"', '""') + '"' for w in query_words(text)]


def tokens(text: str | None) -> list[str]:
    """The searchable tokens of `text`, folded: a word like "e-mail" or "a_b" is two tokens."""
    return _TOKEN.findall(search_key(text) or "")
