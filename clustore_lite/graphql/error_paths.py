"""Hasura's `extensions.path` of an error: where in the request it lies, as a JSON path
(`$.selectionSet.organizations.args.where.name._eq`), so a client can point at the
part of its document at fault. `$` when no such place can be told (variables,
fragments, the request as a whole)."""

from __future__ import annotations

from functools import lru_cache

from graphql import (ArgumentNode, DocumentNode, FieldNode, GraphQLError, ObjectFieldNode,
                     OperationDefinitionNode, Visitor, parse, visit)
from graphql.error import GraphQLSyntaxError

ROOT = "$"


def error_path(error: GraphQLError) -> str:
    """Where `error` lies: from its response path when it was raised while running,
    else from the place of its first node in the document."""
    if isinstance(error, GraphQLSyntaxError):
        return ROOT + ".query"
    if error.path:
        return ROOT + "".join(f".selectionSet.{key}" for key in error.path if isinstance(key, str))
    if not error.positions or error.source is None:
        return ROOT
    document = _parsed(error.source.body)
    if document is None:
        return ROOT
    finder = _Finder(error.positions[0])
    visit(document, finder)
    return finder.found or ROOT


@lru_cache(maxsize=32)
def _parsed(text: str) -> DocumentNode | None:
    """The document again (only errors come here; the same bad document is often sent
    again by a retrying client)."""
    try:
        return parse(text)
    except GraphQLError:
        return None  # a syntax error: the error names its place in the message


class _Finder(Visitor):
    """The path of the innermost field, argument or input field around `position`
    inside an operation."""

    def __init__(self, position: int):
        super().__init__()
        self.position = position
        self.found: str | None = None

    def enter(self, node, key, parent, path, ancestors):
        if node.loc is None or not node.loc.start <= self.position < node.loc.end:
            return False  # the error's place is not below this node
        if isinstance(node, (FieldNode, ArgumentNode, ObjectFieldNode)):
            chain = [a for a in ancestors if not isinstance(a, (list, tuple))] + [node]
            if any(isinstance(a, OperationDefinitionNode) for a in chain):
                self.found = ROOT + "".join(_step(a) for a in chain)
        return None


def _step(node) -> str:
    if isinstance(node, FieldNode):
        return f".selectionSet.{(node.alias or node.name).value}"
    if isinstance(node, ArgumentNode):
        return f".args.{node.name.value}"
    if isinstance(node, ObjectFieldNode):
        return f".{node.name.value}"
    return ""
