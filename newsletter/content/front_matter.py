"""Front matter: splitting a content file into its YAML mapping and its markdown body.

Both paper and issue files are read here, and the importer reads existing paper files
with the same YAML rules (`yaml_loader`), so an id or a date means the same to both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


def warn_unknown(where: str, data: dict[str, Any], known: Iterable[str], problems: list[Problem]) -> None:
    for key in data:
        if key not in known:
            problems.append(Problem(where, str(key), "unknown field (ignored)", warning=True))
