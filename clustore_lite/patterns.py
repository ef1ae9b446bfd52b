"""PostgreSQL's text patterns in Python, for the filters _similar and _regex & co.
(db/sql_functions.py registers `matches` as an SQLite function).

SIMILAR TO is translated to a regular expression exactly as PostgreSQL's
`similar_escape` does; PostgreSQL's regular expressions (Spencer's ARE) are
translated to Python's `re` where they differ (`.` matches a newline, `$` only at
the end, `\\m \\M \\y \\Y` word boundaries, `\\b` a backspace, `[[:alpha:]]` classes).
Classes (`\\w`, `[[:alpha:]]`) and case-insensitivity are ASCII-only, as PostgreSQL's
in the C locale: the same answer whatever the server's locale.

Python's `re` backtracks without a time limit, so a pattern is refused before it
runs when it is longer than MAX_REGEX_PATTERN characters or has the shapes that
backtrack catastrophically (a repeated group holding a repetition or an
alternation, such as `(a+)+` or `(a|aa)*`), and a text longer than MAX_REGEX_TEXT
characters is refused rather than matched."""

from __future__ import annotations

import functools
import re

from .errors import InvalidValue

MAX_REGEX_PATTERN = 1_000  # characters of a _similar / _regex pattern
MAX_REGEX_TEXT = 100_000  # characters of a text matched against one

CLASSES = {  # POSIX bracket classes (ASCII, as in the C locale)
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f", "word": "\\w",
}
ESCAPES = {"m": r"\b(?=\w)", "M": r"\b(?<=\w)", "y": r"\b", "Y": r"\B", "b": r"\x08",
           "Z": r"\Z", "A": r"\A"}


def similar_to_regex(pattern: str) -> str:
    """PostgreSQL's `similar_escape(pattern)` (escape character backslash): the
    regular expression that SIMILAR TO matches with."""
    out, after_escape, quotes, depth, position = ["^(?:"], False, 0, 0, 0
    for char in pattern:
        if after_escape:
            if char == '"' and depth < 1:
                if quotes > 1:
                    raise InvalidValue("a SIMILAR TO pattern may not contain more than two "
                                       'escape-double-quote separators')
                out.append("){1,1}?(" if quotes == 0 else "){1,1}(?:")
                quotes += 1
            else:
                out.append("\\" + char)
                position = 3
            after_escape = False
        elif char == "\\":
            after_escape = True
        elif depth > 0:
            out.append(char)
            if char == "]" and position > 2:
                depth -= 1
            elif char == "[":
                depth, position = depth + 1, 3
            elif char == "^":
                position += 1
            else:
                position = 3
        elif char == "[":
            out.append(char)
            depth, position = 1, 1
        else:
            out.append({"%": ".*", "_": ".", "(": "(?:", ".": "\\.", "^": "\\^",
                        "$": "\\$"}.get(char, char))
    return "".join(out) + ")$"


def to_python(pattern: str) -> str:
    """A PostgreSQL regular expression (ARE) as Python's `re` syntax; InvalidValue
    for a catastrophic shape (see the module's docstring)."""
    out, i, groups = [], 0, [[False, False]]  # per open group: (repeats inside, has |)
    last_group = None  # flags of the group that just closed, if the last atom was one
    while i < len(pattern):
        char, closed = pattern[i], None
        if char == "\\" and i + 1 < len(pattern):
            out.append(ESCAPES.get(pattern[i + 1], pattern[i:i + 2]))
            i += 2
        elif char == "[":
            i = _bracket(pattern, i, out)
        elif char == "(":
            out.append(char)
            groups.append([False, False])
            i += 1
        elif char == ")":
            out.append(char)
            closed = groups.pop() if len(groups) > 1 else [False, False]
            i += 1
        elif char in "*+{" or (char == "?" and out and out[-1] not in "(|"):
            quantifier, repeats, used = _quantifier(pattern, i)
            if repeats and last_group is not None and any(last_group):
                raise InvalidValue(
                    "the regular expression repeats a group that holds a repetition or an "
                    f"alternation (near {pattern[max(0, i - 20):i + 1]!r}), which can take "
                    "exponential time; write it without nesting them")
            groups[-1][0] = groups[-1][0] or repeats
            out.append(quantifier)
            i += used
            last_group = last_group if not repeats else None
            continue
        else:
            if char == "|":
                groups[-1][1] = True
            out.append({"$": r"\Z"}.get(char, char))
            i += 1
        if closed is not None:
            groups[-1][0] = groups[-1][0] or closed[0]  # an inner repetition is ours too
            groups[-1][1] = groups[-1][1] or closed[1]
        last_group = closed
    return "".join(out)


def _quantifier(pattern: str, start: int) -> tuple[str, bool, int]:
    """The quantifier at `start` in Python's syntax, whether it repeats (`?` and
    `{0,1}`, `{1}`... do not), and how many characters of `pattern` it took."""
    if pattern[start] != "{":
        return pattern[start], pattern[start] != "?", 1
    if not pattern[start + 1:start + 2].isdigit():
        return "\\{", False, 1  # not a bound: a literal brace, in PostgreSQL's AREs
    match = re.match(r"\{(\d+)(,?)(\d*)\}", pattern[start:])
    if not match:
        raise InvalidValue(f"invalid repetition count in the regular expression {pattern!r}")
    low, comma, high = match.groups()
    repeats = bool(comma and not high) or int(high or low) > 1
    return match.group(0), repeats, match.end()


def _bracket(pattern: str, start: int, out: list[str]) -> int:
    """Copy the bracket expression at `start`, with POSIX classes translated and a
    literal `[` escaped; answer where it ends."""
    i, parts = start + 1, ["["]
    if pattern[i:i + 1] == "^":
        parts.append("^")
        i += 1
    if pattern[i:i + 1] == "]":
        parts.append("\\]")
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        match = re.match(r"\[:(\w+):\]", pattern[i:])
        if match:
            if match.group(1) not in CLASSES:
                raise InvalidValue(f"invalid character class [:{match.group(1)}:] in the "
                                   "regular expression")
            parts.append(CLASSES[match.group(1)])
            i += match.end()
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            parts.append(pattern[i:i + 2])
            i += 2
        else:
            parts.append("\\[" if pattern[i] == "[" else pattern[i])
            i += 1
    out.append("".join(parts) + ("]" if i < len(pattern) else ""))
    return i + 1


@functools.lru_cache(maxsize=256)
def compiled(pattern: str, similar: bool, ignore_case: bool) -> re.Pattern:
    """The Python pattern for a _similar (similar=True) or _regex-like pattern;
    InvalidValue that says why for a pattern that cannot be used."""
    if len(pattern) > MAX_REGEX_PATTERN:
        raise InvalidValue(f"the pattern has {len(pattern)} characters; at most "
                           f"{MAX_REGEX_PATTERN} are allowed (MAX_REGEX_PATTERN)")
    source = to_python(similar_to_regex(pattern) if similar else pattern)
    flags = re.DOTALL | re.ASCII | (re.IGNORECASE if ignore_case else 0)  # the C locale
    try:
        return re.compile(source, flags)
    except re.error as error:
        raise InvalidValue(f"invalid regular expression {pattern!r}: {error}") from None


def matches(text: str | None, pattern: str | None, similar: int, ignore_case: int) -> int | None:
    """SQL: 1 if `text` matches (SIMILAR TO anchors the whole text; a regex searches
    in it), NULL if either is NULL."""
    if text is None or pattern is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if len(text) > MAX_REGEX_TEXT:
        raise InvalidValue(f"a text of {len(text)} characters was to be matched against a "
                           f"regular expression; at most {MAX_REGEX_TEXT} are allowed "
                           "(MAX_REGEX_TEXT)")
    return int(compiled(pattern, bool(similar), bool(ignore_case)).search(text) is not None)
