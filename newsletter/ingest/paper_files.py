"""Paper files as the importer sees them: read with their exact text, rewritten key by key.

An update rewrites only the lines of the keys it changes: comments, quoting, flow lists,
key order and the body an editor wrote stay byte for byte. New files are written with
the paper schema's key order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.content.front_matter import yaml_loader as content_yaml_loader
from newsletter.content.papers import NOTE_HEADING, split_note
from newsletter.content.schema import ARXIV_ID, KEY_ORDER
from newsletter.ingest.candidates import SourceError


@dataclass
class PaperFile:
    """A paper file as found on disk (or planned): front matter and body.

    For a file read from disk, `text` is its exact text and `front` locates the front
    matter in it, so that an update rewrites only the lines of the keys it changes.
    """

    path: Path
    meta: dict[str, Any]
    body: str
    text: str | None = None  # None: planned in this import
    front: FrontMatter | None = None

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def title(self) -> str:
        value = self.meta.get("title")
        return value if isinstance(value, str) else ""

    @property
    def arxiv(self) -> str | None:
        value = self.meta.get("arxiv")
        if isinstance(value, str) and ARXIV_ID.match(value):
            return value
        return self.id if ARXIV_ID.match(self.id) else None

    @property
    def abstract(self) -> str:
        return split_note(self.body)[0]


@dataclass(frozen=True)
class FrontMatter:
    """Where the front matter sits in a file's text, and where each top-level key's lines are."""

    start: int  # offset of the first front-matter line
    end: int  # offset of the closing '---' line
    spans: dict[str, tuple[int, int, str]]  # key -> (first line, last line, comment kept after the value)


def render_paper(meta: dict[str, Any], body: str) -> str:
    """The file text: front matter in KEY_ORDER (then any other keys), a blank line, the body."""
    ordered = {k: meta[k] for k in KEY_ORDER if k in meta}
    ordered.update((k, v) for k, v in meta.items() if k not in ordered)
    return f"---\n{_dump(ordered)}---\n\n{body.strip()}\n"


def _dump(mapping: dict[str, Any] | list[Any], *, flow: bool = False) -> str:
    import yaml

    # not libyaml's dumper: it writes emoji as \U escapes, which editors then read in titles
    return yaml.safe_dump(
        mapping, allow_unicode=True, sort_keys=False, width=2**30, default_flow_style=None if flow else False
    )


def updated_text(paper: PaperFile, changed: Sequence[str]) -> str:
    """The file's text with only the `changed` keys rewritten (or added before the closing '---').

    Everything else an editor wrote stays byte for byte: comments, quoting, flow lists,
    key order, the body. A front matter that is not a block mapping is written anew.
    """
    if paper.text is None or paper.front is None:
        return render_paper(paper.meta, paper.body)
    front = paper.text[paper.front.start : paper.front.end]
    lines = front.splitlines(keepends=True)
    newline = "\r\n" if front.endswith("\r\n") or "\r\n" in front[:200] else "\n"
    added: list[str] = []
    for key in sorted(changed, key=lambda k: paper.front.spans.get(k, (-1, -1, ""))[0], reverse=True):
        span = paper.front.spans.get(key)
        # a list the editor wrote on one line (`tags: [a, b]`) stays on one line
        flow = span is not None and span[0] == span[1] and isinstance(paper.meta[key], list)
        new = _dump({key: paper.meta[key]}, flow=flow).replace("\n", newline)
        if span is None:
            added.append(new)
            continue
        first, last, comment = span
        if comment and new.count("\n") == 1:
            new = f"{new.rstrip()}  {comment}{newline}"
        lines[first : last + 1] = [new]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    return paper.text[: paper.front.start] + "".join(lines + added) + paper.text[paper.front.end :]


@functools.lru_cache(maxsize=1)
def _yaml_loader() -> type:
    """The content module's loader (ids and dates stay text), on libyaml when it is installed.

    Re-imports read every paper file; the pure-Python parser takes ~7 ms a file.
    """
    import yaml

    base = content_yaml_loader()
    if not getattr(yaml, "__with_libyaml__", False):
        return base

    class FastLoader(yaml.CSafeLoader):
        yaml_implicit_resolvers = base.yaml_implicit_resolvers

    return FastLoader


FRONT_BOUNDARY = re.compile(r"^-{3,}[ \t\r]*$", re.MULTILINE)


def read_paper_file(path: Path) -> PaperFile:
    """Read an existing paper file the way `newsletter.content.papers` reads it (ids and dates stay text)."""
    import yaml

    where = path.name
    try:
        text = path.read_bytes().decode("utf-8")  # as is: an update keeps the file's line endings
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(where, f"cannot read an existing paper file: {exc}") from None
    bom = len(text) - len(text.removeprefix("\ufeff"))
    opening = FRONT_BOUNDARY.match(text, bom)
    closing = FRONT_BOUNDARY.search(text, opening.end()) if opening else None
    meta = node = None
    if opening and closing:
        start = opening.end() + 1 if text[opening.end() : opening.end() + 1] == "\n" else opening.end()
        raw = text[start : closing.start()]
        loader = _yaml_loader()(raw)
        try:
            node = loader.get_single_node()
            meta = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError:
            meta = None
        finally:
            loader.dispose()
    if not isinstance(meta, dict):
        raise SourceError(
            where, "expected front matter between '---' lines; fix this file first (`newsletter check`) "
            "so the import can tell whether it already has these papers"
        )  # fmt: skip
    front = None
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        front = FrontMatter(start, closing.start(), _key_spans(raw, node))
    body = text[closing.end() :].lstrip("\r\n")
    return PaperFile(path, meta, body.strip(), text=text, front=front)


def _key_spans(raw: str, node: Any) -> dict[str, tuple[int, int, str]]:
    """Each top-level key's line range in the front matter, and a comment after a one-line value."""
    import yaml

    lines = raw.splitlines()
    spans: dict[str, tuple[int, int, str]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        first = key.start_mark.line
        last, column = value.end_mark.line, value.end_mark.column
        comment = ""
        if column == 0 or last >= len(lines):  # a block value ends where the next line starts
            last -= 1
            while last > first and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
                last -= 1  # comments and blank lines after a block belong to what follows
        else:
            rest = lines[last][column:].strip()
            comment = rest if rest.startswith("#") else ""
        spans[str(key.value)] = (first, max(first, last), comment)
    return spans


def load_paper_files(papers_dir: Path) -> list[PaperFile]:
    if not papers_dir.is_dir():
        return []
    return [read_paper_file(p) for p in sorted(papers_dir.glob("*.md"))]


def retagged_text(paper: PaperFile, add: Sequence[str], remove: Sequence[str]) -> str:
    """The file's text with `add` tags appended and `remove` tags dropped; only the tags line(s) change."""
    current = paper.meta.get("tags") or []
    current = [current] if isinstance(current, str) else [str(t) for t in current]
    dropped = {t.lower() for t in remove}
    tags = [t for t in current if t.lower() not in dropped]
    tags += [t for t in add if t.lower() not in {x.lower() for x in tags} and t.lower() not in dropped]
    if tags == current:
        return paper.text if paper.text is not None else render_paper(paper.meta, paper.body)
    paper.meta["tags"] = tags
    kept = _retagged_block(paper, tags, dropped)
    return kept if kept is not None else updated_text(paper, ["tags"])


def _retagged_block(paper: PaperFile, tags: Sequence[str], dropped: set[str]) -> str | None:
    """A block `tags:` list edited item by item, so comments between and after its items stay.

    None when the list is not one plain item per line (then the whole key is rewritten).
    """
    import yaml

    span = paper.front.spans.get("tags") if paper.front is not None else None
    if not tags or paper.text is None or paper.front is None or span is None or span[0] == span[1]:
        return None  # an emptied list is written `tags: []`
    front = paper.text[paper.front.start : paper.front.end]
    lines = front.splitlines(keepends=True)
    first, last, _ = span
    newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
    kept: list[str] = [lines[first]]
    values: list[str] = []
    indent, after = "", 1  # where added items go: after the last item
    for line in lines[first + 1 : last + 1]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            kept.append(line)
            continue
        try:
            item = yaml.safe_load(stripped)
        except yaml.YAMLError:
            return None
        if not (stripped.startswith("- ") and isinstance(item, list) and len(item) == 1):
            return None
        value = str(item[0])
        if value.lower() in dropped:
            continue
        kept.append(line)
        values.append(value)
        indent, after = line[: len(line) - len(line.lstrip())], len(kept)
    added = [t for t in tags if t.lower() not in {v.lower() for v in values}]
    new_items = [indent + _dump([t]).rstrip("\n") + newline for t in added]
    kept[after:after] = new_items
    if [*values, *added] != list(tags):
        return None
    lines[first : last + 1] = kept
    return paper.text[: paper.front.start] + "".join(lines) + paper.text[paper.front.end :]


def with_note(paper: PaperFile, note: str) -> str:
    """The file's text with the editor's note replaced (an empty note removes the section).

    The front matter and the abstract stay byte for byte; the note goes under the
    '## Editor's note' heading after the abstract.
    """
    text = paper.text if paper.text is not None else render_paper(paper.meta, paper.body)
    closing = FRONT_BOUNDARY.search(text, FRONT_BOUNDARY.match(text, _bom(text)).end())
    body_start = closing.end()
    heading = NOTE_HEADING.search(text, body_start)
    newline = "\r\n" if "\r\n" in text else "\n"
    kept = (text[: heading.start()] if heading else text).rstrip("\r\n \t")
    note = note.strip()
    if not note:
        return kept + newline
    note = newline.join(note.splitlines())
    return f"{kept}{newline}{newline}## Editor's note{newline}{newline}{note}{newline}"


def _bom(text: str) -> int:
    return len(text) - len(text.removeprefix("\ufeff"))
