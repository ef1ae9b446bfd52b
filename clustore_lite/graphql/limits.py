"""Limits on what one GraphQL document may ask, checked before it runs: nesting
depth, the number of fields once fragments are expanded (aliases multiply work), and
the number of root fields. Each answers a validation error, never a slow server."""

from __future__ import annotations

from graphql import (FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode,
                     OperationDefinitionNode, ValidationRule)

MAX_DEPTH = 20  # the standard introspection query is 14 deep
MAX_FIELDS = 2_000
MAX_ROOT_FIELDS = 50


def limits_rule(max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS,
                max_root_fields: int = MAX_ROOT_FIELDS) -> type[ValidationRule]:
    class Limits(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_):
            fragments = {f.name.value: f for f in self.context.document.definitions
                         if f.kind == "fragment_definition"}
            roots = [s for s in node.selection_set.selections if isinstance(s, FieldNode)]
            if len(roots) > max_root_fields:
                self._fail(f"the operation has {len(roots)} root fields; at most "
                           f"{max_root_fields} are allowed", node)
                return
            counter = {"fields": 0}
            depth = _measure(node.selection_set, fragments, 0, counter, set(), max_fields)
            if depth > max_depth:
                self._fail(f"the query is {depth} levels deep; at most {max_depth} are allowed", node)
            elif counter["fields"] > max_fields:
                self._fail(f"the query selects more than {max_fields} fields once fragments "
                           "are expanded", node)

        def _fail(self, message: str, node) -> None:
            self.report_error(GraphQLError(message, node, extensions={"code": "validation-failed"}))

    return Limits


def _measure(selection_set, fragments, depth, counter, visiting, max_fields) -> int:
    """The depth below `selection_set`, counting fields as it goes (stops early when
    the count is already over the limit, so a fragment bomb costs little)."""
    deepest = depth
    for selection in selection_set.selections:
        if counter["fields"] > max_fields:
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
