"""Objects built once per stored document (schema.types), one at a time or a page at once."""

from __future__ import annotations

import copy

from schema.types import customer_from_doc, talk_from_doc
from tests.factories import talk


def _docs() -> list[dict[str, object]]:
    """Talk documents as the store keeps them (only the keys the object reads matter)."""
    docs = []
    for n in range(3):
        payload = talk(100 + n)
        docs.append({**payload, "customer_id": payload["customer"]["id"]})
    return docs


def test_many_gives_the_objects_one_call_each_gives_in_order() -> None:
    docs = _docs()
    one_by_one = [talk_from_doc(doc) for doc in docs[:2]]  # remembered already
    together = talk_from_doc.many([docs[1], docs[2], docs[0], docs[2]])

    assert together[0] is one_by_one[1]
    assert together[2] is one_by_one[0]
    assert together[1] is together[3]  # new to it, built once
    assert together[1] is talk_from_doc(docs[2])
    assert [t.id for t in together] == [docs[i]["id"] for i in (1, 2, 0, 2)]


def test_an_equal_but_other_document_is_built_again() -> None:
    doc = _docs()[0]["customer"]
    assert isinstance(doc, dict)
    first = customer_from_doc.many([doc])[0]
    again = copy.deepcopy(doc)

    [other] = customer_from_doc.many([again])

    assert other is not first
    assert other.id == first.id
    assert customer_from_doc.many([]) == []
