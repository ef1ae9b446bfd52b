"""PostgreSQL's text patterns in Python, for the filters _similar and _regex & co.
(db/sql_functions.py registers `matches` as an SQLite function).

SIMILAR TO is translated to a regular expression exactly as PostgreSQL's
`similar_escape` does; PostgreSQL's regular expressions (Spencer's ARE) are
translated to Python's syntax where they differ (`.` matches a newline, `$` only at
the end, `\\m \\M \\y \\Y` word boundaries, `\\b` a backspace, `[[:alpha:]]` classes).
Classes (`\\w`, `[[:alpha:]]`) and case-insensitivity are ASCII-only, as PostgreSQL's
in the C locale: the same answer whatever the server's locale.

They run on the `regex` module (the syntax of `re`, plus a timeout): a backtracking
engine can take exponential time, so against runaway patterns (ReDoS) a pattern has
at most MAX_REGEX_PATTERN characters and no repeated group that holds a repetition
(`(a+)+`: refused before it runs), a matched text at most MAX_REGEX_TEXT characters,
and the matching of one statement at most MAX_REGEX_SECONDS in all; each limit is
named in its error."""

from __future__ import annotations

import collections
import functools
import re
import threading
import time

import regex

from .errors import InvalidValue

MAX_REGEX_PATTERN = 1_000  # characters of a _similar / _regex pattern
MAX_REGEX_TEXT = 100_000  # characters of a text matched against one
MAX_REGEX_SECONDS = 2.0  # matching in one statement (its budget), all rows together

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
    """A PostgreSQL regular expression (ARE) in Python's syntax; InvalidValue for a
    repeated group that holds a repetition (see the module's docstring)."""
    out, i = [], 0
    repeating = [False]  # per open group: whether a repetition is inside it
    closed = None  # after a group's `)`: whether it held a repetition; else None
    while i < len(pattern):
        char, just_closed = pattern[i], None
        if char == "\\" and i + 1 < len(pattern):
            out.append(ESCAPES.get(pattern[i + 1], pattern[i:i + 2]))
            i += 2
        elif char == "[":
            i = _bracket(pattern, i, out)
        elif char == "(":
            out.append(char)
            repeating.append(False)
            i += 1
        elif char == ")":
            out.append(char)
            just_closed = repeating.pop() if len(repeating) > 1 else False
            repeating[-1] = repeating[-1] or just_closed  # an inner repetition is ours too
            i += 1
        elif char in "*+{" or (char == "?" and out and out[-1] not in "(|"):
            quantifier, repeats, used = _quantifier(pattern, i)
            if repeats and closed:
                raise InvalidValue(
                    "the regular expression repeats a group that holds a repetition (near "
                    f"{pattern[max(0, i - 20):i + 1]!r}), which can take exponential time; "
                    "write it without nesting them")
            repeating[-1] = repeating[-1] or repeats
            out.append(quantifier)
            i += used
            closed = closed if not repeats else None  # `(a+)?+` is still a nesting
            continue
        else:
            out.append(r"\Z" if char == "$" else char)
            i += 1
        closed = just_closed
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
def compiled(pattern: str, similar: bool, ignore_case: bool) -> regex.Pattern:
    """The compiled pattern for a _similar (similar=True) or _regex-like pattern;
    InvalidValue that says why for a pattern that cannot be used."""
    if len(pattern) > MAX_REGEX_PATTERN:
        raise InvalidValue(f"the pattern has {len(pattern)} characters; at most "
                           f"{MAX_REGEX_PATTERN} are allowed (MAX_REGEX_PATTERN)")
    source = to_python(similar_to_regex(pattern) if similar else pattern)
    flags = regex.DOTALL | regex.ASCII | (regex.IGNORECASE if ignore_case else 0)  # C locale
    try:
        return regex.compile(source, flags)
    except regex.error as error:
        raise InvalidValue(f"invalid regular expression {pattern!r}: {error}") from None


class Budgets:
    """The matching time each statement has spent, by the budget number its compiler
    bound (the most recent statements only: an old one has long finished)."""

    def __init__(self, kept: int = 4096):
        self.spent: collections.OrderedDict[int, float] = collections.OrderedDict()
        self.kept = kept
        self.lock = threading.Lock()

    def left(self, budget: int) -> float:
        with self.lock:
            return MAX_REGEX_SECONDS - self.spent.get(budget, 0.0)

    def spend(self, budget: int, seconds: float) -> None:
        with self.lock:
            self.spent[budget] = self.spent.get(budget, 0.0) + seconds
            self.spent.move_to_end(budget)
            while len(self.spent) > self.kept:
                self.spent.popitem(last=False)


BUDGETS = Budgets()


def matches(text: str | None, pattern: str | None, similar: int, ignore_case: int,
            budget: int) -> int | None:
    """SQL: 1 if `text` matches (SIMILAR TO anchors the whole text; a regex searches
    in it), NULL if either is NULL; within the statement's `budget` of time."""
    if text is None or pattern is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if len(text) > MAX_REGEX_TEXT:
        raise InvalidValue(f"a text of {len(text)} characters was to be matched against a "
                           f"regular expression; at most {MAX_REGEX_TEXT} are allowed "
                           "(MAX_REGEX_TEXT)")
    started = time.monotonic()
    try:
        found = compiled(pattern, bool(similar), bool(ignore_case)).search(
            text, timeout=max(BUDGETS.left(budget), 0.001))
    except TimeoutError:
        raise InvalidValue(f"matching the regular expression {pattern[:50]!r} took more than "
                           f"{MAX_REGEX_SECONDS:g} s in this query; at most "
                           f"{MAX_REGEX_SECONDS:g} s are allowed (MAX_REGEX_SECONDS)") from None
    finally:
        BUDGETS.spend(budget, time.monotonic() - started)
    return int(found is not None)
