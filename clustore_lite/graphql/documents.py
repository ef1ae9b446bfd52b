"""GraphQL documents checked (parsed and validated) within the limits of limits.py,
and the valid ones cached.

A check costs CPU in proportion to the document, so the server runs it in a worker
thread, a few at a time, before Ariadne sees the request (`prepare`); Ariadne's own
parse and validate steps (`parser`, `validator`) then only look the result up.

Only valid documents are cached: keyed by the SHA-256 of their text (not the text),
least recently used first out, bounded in count and in the bytes of their texts. A
parsed document takes 70-130 times the size of its text (measured with tracemalloc),
so the default budget of 512 KiB of text holds at most ~64 MB."""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio
from graphql import GraphQLError, GraphQLSchema, parse, specified_rules, validate

from .limits import (CHECK_SECONDS, MAX_DOCUMENT_BYTES, MAX_TOKENS, OverBudget,
                     deadline_rule, over_budget, shape_errors, size_error)

CACHED_DOCUMENTS = 1024
CACHED_BYTES = 512 << 10
CONCURRENT_CHECKS = 2  # checks of new documents at once; cached ones need none


@dataclass
class Checked:
    """A document and its validation errors; document is None when it does not parse."""

    document: object | None
    errors: list = field(default_factory=list)
    text: str = ""


class Documents:
    """Checked documents: `check` (any thread), `prepare` (async, in a worker thread),
    and Ariadne's query_parser/query_validator over their results."""

    def __init__(self, schema: GraphQLSchema, rules=(), size: int = CACHED_DOCUMENTS,
                 cache_bytes: int = CACHED_BYTES, max_bytes: int = MAX_DOCUMENT_BYTES,
                 max_tokens: int = MAX_TOKENS, seconds: float = CHECK_SECONDS):
        self.schema = schema
        self.rules = (*specified_rules, *rules)
        self.size, self.cache_bytes = size, cache_bytes
        self.max_bytes, self.max_tokens, self.seconds = max_bytes, max_tokens, seconds
        self._cache: OrderedDict[bytes, Checked] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._errors: dict[int, list] = {}  # id(document) -> its errors, while it lives
        self._limiter: anyio.CapacityLimiter | None = None

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def cached_bytes(self) -> int:
        """The bytes of the texts of the cached documents."""
        return self._bytes

    def cached(self, text: str) -> Checked | None:
        """The checked document for `text`, if it is cached (cheap: one hash)."""
        if size_error(text, self.max_bytes) is not None:
            return None
        key = _key(text)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
        return found

    def check(self, text: str) -> Checked:
        """Parse and validate `text` within the limits; cache it when valid."""
        found = self.cached(text)
        if found is not None:
            return found
        checked = self._check(text)
        if checked.document is not None:
            self._remember(checked)
        if checked.document is not None and not checked.errors:
            self._store(_key(text), checked)
        return checked

    async def prepare(self, text: str) -> Checked:
        """`check` in a worker thread (a few at a time), unless the text is cached."""
        found = self.cached(text)
        if found is not None:
            return found
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(CONCURRENT_CHECKS)
        return await anyio.to_thread.run_sync(self.check, text, limiter=self._limiter)

    def _check(self, text: str) -> Checked:
        too_big = size_error(text, self.max_bytes)
        if too_big is not None:
            return Checked(None, [too_big], text)
        deadline = time.monotonic() + self.seconds
        try:
            document = parse(text, max_tokens=self.max_tokens)
        except GraphQLError as error:
            return Checked(None, [error], text)
        errors = shape_errors(document)
        if not errors:
            try:
                errors = validate(self.schema, document, (*self.rules, deadline_rule(deadline)))
            except OverBudget:
                errors = [over_budget(self.seconds)]
        return Checked(document, errors, text)

    def _remember(self, checked: Checked) -> None:
        """Keep the errors of a parsed document for `validator`, as long as it lives."""
        key = id(checked.document)
        self._errors[key] = checked.errors
        weakref.finalize(checked.document, self._errors.pop, key, None)

    def _store(self, key: bytes, checked: Checked) -> None:
        size = len(checked.text)
        if size > self.cache_bytes:
            return
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = checked
            self._bytes += size
            while len(self._cache) > self.size or self._bytes > self.cache_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._bytes -= len(evicted.text)

    # -- Ariadne's hooks -------------------------------------------------------------

    def parser(self, context, data) -> object:
        """Ariadne's query_parser: the document `prepare` checked for this request
        (kept in the context), else a check here."""
        text = data["query"]
        checked = context.get("document") if isinstance(context, dict) else None
        if not isinstance(checked, Checked) or checked.text != text:
            checked = self.check(text)
        if checked.document is None:
            raise checked.errors[0]
        return checked.document

    def validator(self, schema, document, rules=None, max_errors=None, **_) -> list:
        """Ariadne's query_validator: the errors found when the document was checked."""
        errors = self._errors.get(id(document))
        if errors is not None:
            return errors
        return validate(schema, document, rules, max_errors=max_errors)


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
