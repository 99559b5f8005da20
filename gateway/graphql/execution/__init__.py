"""A faster execution of plain and loaded fields, with the same results as graphql-core's.

A plain field is a strawberry field that only reads an attribute of its source object: no
resolver, no field extension (so no permission check), no arguments. graphql-core spends
most of a large answer on such fields, building a resolve info, a path and four nested
calls for each value. FastExecutionContext reads them straight off the object and coerces
them with the field type's own coercion, in graphql-core's order of keys; a run of such
fields is completed by a function generated for it (`_leaves_filler`), which reads each
attribute directly and writes the usual scalars' coercion inline. Lists of objects held by
plain fields (a connection's edges) are completed item by item the same way.

The items of a list of objects whose plan holds only leaves, `__typename`, plain objects and
loaded fields are each completed by one function generated for the plan's shape
(`_completer`): a page's edge, its talk and the talk's customer (read with the page, so
already in its loader) in one call, without a plan run per object. A loaded object not in
its loader yet is left as a load, deferred to the list as the plan's way would (W3's
messages and their users: 17.34 to 16.25 M instructions per request). An item it cannot
be sure of (an unusual value, an exception) goes the plan's way, as do the list's items
after it. Objects shared between requests (`schema.contracts.frozen_snapshots`: those
built once per stored document) keep the values of their leading plain fields per
selection, so a page that overlaps the last one completes only what it has not seen (and
its loads).

A field whose only extension is a scope check (`schema.permissions.needs`) is decided once
per request from the caller's scopes: granted, it is completed as a field without the check
would be; refused (and nullable, without arguments), it is `_MASKED`: null, with the check's
FORBIDDEN error at its path, its resolver never run and its value never read. What a caller
may see is so decided per request, never per object: the values kept on shared objects are
those of unguarded fields only, or of the granted selection's own key (`_MEMO_KEYS`).

A field with an async resolver (the root fields among them) runs through strawberry's
wrapper: its Info, its arguments converted, the scope checks awaited one by one, a coroutine
for each layer. When the caller's scopes grant the field's checks, graphql-core is handed
the resolver's direct call instead (`_DirectCalls`, through graphql-core's own hook for
wrapping resolvers): the same Info and conversion (an input with its own `from_input`
hook, such as TalkFilter, built by the hook directly), one coroutine (W1 and W2 pages, 100
talks each: ~0.1 M instructions less per request, of 6.5 M and 4.4 M). A caller the
checks refuse, and every field of a schema with exception handlers, keep the wrapper.

A loaded field is one declared with `schema.loaded.loaded_by` (`Talk.customer`): its value
is one `load` from the request's loaders. graphql-core would run its resolver once per item
of a list, each with a resolve info, a coroutine and a task, and gather a hundred awaitables
for a single batch. Here the loads of a whole list are made while its items are completed
(`_deferred`), awaited together once the list is done, and their objects completed in turn,
level by level: one awaitable per list instead of several per item. Only nullable loaded
fields are deferred, so an error there makes that field null and never reaches the items.
Other loaded fields (non-null, lists, or keyed by their arguments: `Talk.histories(first,
after)`, `Talk.events`) are loaded per object (`_LOAD_EACH`): the resolver's own load, made
while the object is completed, awaited and completed as graphql-core does a resolver's
awaitable, so errors go up as they would; what it spares is the resolve info, strawberry's
resolver wrappers and argument conversion (the arguments are coerced once per request),
and the resolver's coroutine: W3 (20 talks with histories and events) went from 22.05 to
18.14 M instructions per request (bench.instructions).

Whenever it cannot be sure of the same result (a null for a non-null field, a value the
coercion refuses, an awaitable, middleware), it hands the field to graphql-core, which
produces its usual error.
"""

from __future__ import annotations

from typing import Final

from gateway.graphql.execution.context import FastExecutionContext

__all__ = ["GRAPHQL_CORE_SERIES", "FastExecutionContext"]

# The graphql-core minor series whose executor internals this module overrides and calls
# (pyproject.toml pins it; tests/gateway/graphql/test_graphql_core_contract.py checks both).
GRAPHQL_CORE_SERIES: Final = (3, 3)
