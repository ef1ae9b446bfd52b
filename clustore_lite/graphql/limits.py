"""Limits on what one GraphQL document may ask, checked before it runs, cheapest
first: its size in bytes (before parsing), its tokens (while parsing), then its shape
(nesting depth, the number of fields once fragments are expanded, root fields) before
the standard validation rules, some of which take time quadratic in the number of
fields; validation itself runs within a time budget. Each limit answers a validation
error that names it, never a slow server."""

from __future__ import annotations

import time

from graphql import (FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode,
                     OperationDefinitionNode, ValidationRule)

MAX_DOCUMENT_BYTES = 64 << 10  # the standard introspection query is 1.5 KB
MAX_TOKENS = 10_000  # parsing is linear in tokens: ~10 us each
MAX_DEPTH = 20  # the standard introspection query is 14 deep
MAX_FIELDS = 2_000
MAX_ROOT_FIELDS = 50
MAX_SPREAD_DEPTH = 50  # fragments spread in fragments spread in ...
CHECK_SECONDS = 5.0  # parse + validate; the limits above keep a check well under this
LIMIT_CODE = {"code": "validation-failed"}


def refusal(message: str, nodes=None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions=dict(LIMIT_CODE))


def size_error(text: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> GraphQLError | None:
    """The document is over the byte limit (checked before anything reads it)."""
    if len(text) <= max_bytes // 4:  # 4 bytes per character at most: no need to encode
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return None
    return refusal(f"the document has {size} bytes; at most {max_bytes} are allowed")


def shape_errors(document, max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS,
                 max_root_fields: int = MAX_ROOT_FIELDS) -> list[GraphQLError]:
    """Each operation's root fields, depth and fields once fragments are expanded,
    measured in one pass that stops as soon as a count passes its limit."""
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    errors = []
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            message = _operation_shape(node, fragments, max_depth, max_fields, max_root_fields)
            if message:
                errors.append(refusal(message, node))
    return errors


def _operation_shape(node: OperationDefinitionNode, fragments, max_depth, max_fields,
                     max_root_fields) -> str | None:
    roots = [s for s in node.selection_set.selections if isinstance(s, FieldNode)]
    if len(roots) > max_root_fields:
        return f"the operation has {len(roots)} root fields; at most {max_root_fields} are allowed"
    counter = {"fields": 0, "spreads": 0}
    depth = _measure(node.selection_set, fragments, 0, counter, set(), max_fields)
    if counter["spreads"] > MAX_SPREAD_DEPTH:
        return (f"fragments are spread in fragments more than {MAX_SPREAD_DEPTH} levels deep; "
                f"at most {MAX_SPREAD_DEPTH} are allowed")
    if depth > max_depth:
        return f"the query is {depth} levels deep; at most {max_depth} are allowed"
    if counter["fields"] > max_fields:
        return (f"the query selects more than {max_fields} fields once fragments are "
                f"expanded; at most {max_fields} are allowed")
    return None


def limits_rule(max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS,
                max_root_fields: int = MAX_ROOT_FIELDS) -> type[ValidationRule]:
    """The shape limits as a validation rule, for validations that do not go through
    `shape_errors` first (Ariadne's, on a document it parsed itself)."""
    class Limits(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_):
            fragments = {f.name.value: f for f in self.context.document.definitions
                         if f.kind == "fragment_definition"}
            message = _operation_shape(node, fragments, max_depth, max_fields, max_root_fields)
            if message:
                self.report_error(refusal(message, node))

    return Limits


class OverBudget(Exception):
    """Raised inside graphql-core's validation to stop it at the time budget."""


def deadline_rule(deadline: float) -> type[ValidationRule]:
    """A rule that stops validation once time.monotonic() passes `deadline`."""
    class Deadline(ValidationRule):
        def enter(self, *_):
            if time.monotonic() > deadline:
                raise OverBudget

    return Deadline


def over_budget(seconds: float) -> GraphQLError:
    return refusal(f"checking the document took more than {seconds:g} s; at most "
                   f"{seconds:g} s are allowed")


def _measure(selection_set, fragments, depth, counter, visiting, max_fields) -> int:
    """The depth below `selection_set`, counting fields and the longest chain of
    fragment spreads as it goes (stops early when a count is already over its limit, so
    a fragment bomb costs little and a chain of fragments recurses little)."""
    deepest = depth
    counter["spreads"] = max(counter["spreads"], len(visiting))
    for selection in selection_set.selections:
        if counter["fields"] > max_fields or counter["spreads"] > MAX_SPREAD_DEPTH:
            return deepest
        if isinstance(selection, FieldNode):
            counter["fields"] += 1
            if selection.selection_set:
                deepest = max(deepest, _measure(selection.selection_set, fragments, depth + 1,
                                                counter, visiting, max_fields))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _measure(selection.selection_set, fragments, depth,
                                            counter, visiting, max_fields))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visiting or name not in fragments:
                continue  # cycles and unknown fragments are reported by the standard rules
            visiting.add(name)
            deepest = max(deepest, _measure(fragments[name].selection_set, fragments, depth,
                                            counter, visiting, max_fields))
            visiting.discard(name)
    return deepest
