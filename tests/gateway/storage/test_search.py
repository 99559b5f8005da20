"""Text search on every backend.

One suite, every backend: each test runs on SQLite and on PostgreSQL (see tests/backends.py).
"""

from __future__ import annotations

import pytest

from gateway.errors import BadUserInput
from gateway.storage import TalkStore
from gateway.storage.records import (
    TalkQuery,
)
from tests.factories import message, talk
from tests.gateway.storage.support import (
    TALK,
    deliver,
    delivery,
    talk_ids,
)

# -- text search --------------------------------------------------------------------------------

X1, X2, X3, X4 = 114901, 114902, 114903, 114904


@pytest.fixture
async def texts(store: TalkStore) -> None:
    bodies = {
        X1: ["Olá, preciso de ajuda com minha fatura", "📣 Atenção! Nosso número mudou."],
        X2: ["fatura or boleto"],
        X3: ["Boleto atrasado"],
        X4: ["near the fatura boleto"],
    }
    payloads = [
        talk(i, talk_histories=[message(i * 10 + n, t, talk_id=i) for n, t in enumerate(lines)])
        for i, lines in bodies.items()
    ]
    await store.ingest([delivery(payloads)])


@pytest.mark.usefixtures("texts")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fatura", [X1, X2, X4]),
        ("FATURA", [X1, X2, X4]),
        ("fatur", []),
        ("atencao", [X1]),
        ("ATENÇÃO", [X1]),
        ("numero", [X1]),
        ("  boleto   atrasado ", [X3]),
        ("atrasado boleto", [X3]),
    ],
)
async def test_text_search_is_whole_word_and_ignores_case_and_accents(
    store: TalkStore, text: str, expected: list[int]
) -> None:
    assert await talk_ids(store, TalkQuery(text=text)) == expected


@pytest.mark.usefixtures("texts")
async def test_text_search_words_may_be_in_different_messages_of_a_talk(
    store: TalkStore,
) -> None:
    assert await talk_ids(store, TalkQuery(text="ajuda mudou")) == [X1]


@pytest.mark.usefixtures("texts")
async def test_text_search_needs_every_word_in_the_talk(store: TalkStore) -> None:
    assert await talk_ids(store, TalkQuery(text="ajuda boleto")) == []


@pytest.mark.usefixtures("texts")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"fatura', [X1, X2, X4]),
        ('fatura"', [X1, X2, X4]),
        ("fatura OR boleto", [X2]),
        ("fatur*", []),
        ("fatura*", [X1, X2, X4]),
        ("NEAR(fatura boleto)", [X4]),
        ("NEAR(fatura boleto, 1)", []),
        ("boleto NOT atrasado", []),
        ("-boleto", [X2, X3, X4]),
        ("message:fatura", []),
        ("^fatura", [X1, X2, X4]),
        ("(fatura)", [X1, X2, X4]),
    ],
)
async def test_search_syntax_characters_are_words_not_syntax(
    store: TalkStore, text: str, expected: list[int]
) -> None:
    assert await talk_ids(store, TalkQuery(text=text)) == expected


@pytest.mark.parametrize("text", ["", "   ", "!!! ???", '"*"', "📣"])
async def test_a_text_filter_without_words_is_bad_input(store: TalkStore, text: str) -> None:
    with pytest.raises(BadUserInput):
        await talk_ids(store, TalkQuery(text=text))
    with pytest.raises(BadUserInput):
        await store.count_talks(query=TalkQuery(text=text))


async def test_search_follows_a_message_text_replaced_by_a_winning_snapshot(
    store: TalkStore,
) -> None:
    first = talk(TALK, finished_at=None, talk_histories=[message(501, "alpha", talk_id=TALK)])
    winner = talk(TALK, talk_histories=[message(501, "bravo", talk_id=TALK)])
    loser = talk(TALK, finished_at=None, talk_histories=[message(501, "charlie", talk_id=TALK)])

    await deliver(store, first, winner, loser)

    assert await talk_ids(store, TalkQuery(text="alpha")) == []
    assert await talk_ids(store, TalkQuery(text="bravo")) == [TALK]
    assert await talk_ids(store, TalkQuery(text="charlie")) == []
