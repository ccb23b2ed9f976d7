"""Front matter: splitting a content file into its YAML mapping and its markdown body.

Both paper and issue files are read here, and the importer reads existing paper files
with the same YAML rules (`yaml_loader`), so an id or a date means the same to both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from newsletter.errors import Problem


def read_front_matter(path: Path, problems: list[Problem], where: str) -> tuple[dict[str, Any], str] | None:
    """Split a file into (front matter, body); on failure record a problem with the line."""
    import frontmatter
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(where, None, f"not UTF-8 text (byte {exc.start})"))
        return None
    except OSError as exc:
        problems.append(Problem(where, None, f"cannot read: {exc.strerror}"))
        return None
    text = text.removeprefix("\ufeff")
    handler = frontmatter.YAMLHandler()
    if not handler.detect(text):
        problems.append(
            Problem(where, None, "expected front matter between '---' lines at the top, found none")
        )
        return None
    try:
        raw, body = handler.split(text)
    except ValueError:
        problems.append(Problem(where, None, "front matter is not closed by a '---' line"))
        return None
    try:
        data = yaml.load(raw, Loader=yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # the split keeps the newline after the opening '---', so the mark counts that line already
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(f"{where}{line}", None, f"front matter is not valid YAML: {reason}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem.expected(where, None, "front matter as 'key: value' lines", data))
        return None
    return data, body


@lru_cache(maxsize=1)
def yaml_loader() -> type:
    """A YAML SafeLoader that leaves floats and timestamps as text, and booleans to true/false.

    An unquoted arXiv id like 2401.10010 must not become the float 2401.1001, and
    an impossible date like 2024-01-32 must reach the date converter as text (with a
    clear error) instead of failing inside YAML. Dates are parsed by `schema.date`. As in
    YAML 1.2, only true/false are booleans: a tag `yes` or `on` stays a word.
    """
    import yaml

    class ContentLoader(yaml.SafeLoader):
        pass

    dropped = {"tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
    ContentLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in dropped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    ContentLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return ContentLoader


def error_count(problems: list[Problem]) -> int:
    # a reader compares the count before and after one file: did this file add errors?
    return sum(not p.warning for p in problems)


def check_unknown(
    where: str, data: dict[str, Any], known: Sequence[str], problems: list[Problem], *, strict: bool = False
) -> None:
    """Unknown keys: an error when close to a known one (a typo like `stauts`), else a warning.

    With `strict` (inside `select`, where an ignored rule changes which papers go out),
    every unknown key is an error.
    """
    for key in data:
        if key in known:
            continue
        guess = closest(str(key), known)
        if guess is None and not strict:
            problems.append(Problem(where, str(key), "unknown field (ignored)", warning=True))
            continue
        expected = f"one of {', '.join(known)}" if guess is None else f"{guess!r}"
        problems.append(
            Problem(
                where,
                str(key),
                "unknown field" + (f"; did you mean {guess!r}?" if guess else f" (expected {expected})"),
            )
        )


def closest(word: str, choices: Iterable[str], max_distance: int = 2) -> str | None:
    """The choice nearest to `word` within `max_distance` edits (a did-you-mean), else None."""
    best: tuple[int, str] | None = None
    for choice in choices:
        d = edit_distance(word.casefold(), choice.casefold(), max_distance)
        if d <= max_distance and (best is None or d < best[0]):
            best = (d, choice)
    return best[1] if best else None


def edit_distance(a: str, b: str, cap: int) -> int:
    """Levenshtein distance (insert, delete, substitute, swap two neighbours), stopping past `cap`."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    before: list[int] | None = None
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)  # a swap: "stauts" -> "status"
        if min(current) > cap:
            return cap + 1
        before, row = row, current
    return row[-1]
