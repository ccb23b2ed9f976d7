"""Subscriber tags: adding and removing them, reading them for a page of subscribers, importing them.

Tags are folded before they are stored (`newsletter.text.fold_tag`: lowercase, single
spaces, no commas), so a tag has one spelling and an audience finds it however a platform
or an editor wrote it. An import only adds tags; `subscribers tag --remove` removes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.store.engine import Database
from newsletter.store.schema import subscriber_tags, subscribers, utc_now
from newsletter.text import fold_tag

_CHUNK = 1000  # ids per IN (...) list; well under SQLite's 32766 variables


class Tags:
    """The tags of the subscribers of one database."""

    def __init__(self, db: Database, identify: Callable[[str | int], sa.ColumnElement[bool]]) -> None:
        self.db = db
        self.identify = identify  # an address or an id -> the WHERE clause naming that subscriber

    def tag_subscribers(
        self, addresses: Sequence[str | int], *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> dict[str, tuple[str, ...] | None]:
        """Add and remove tags of several subscribers in one transaction: their tags after it.

        Each address (or id) maps to its subscriber's tags, or None when there is no such
        subscriber (nothing is changed for it). Tags are folded (`fold_tag`, ValueError).
        """
        added = [fold_tag(t) for t in add]
        removed = [fold_tag(t) for t in remove]
        result: dict[str, tuple[str, ...] | None] = {}
        with self.db.write() as conn:
            for address in addresses:
                row = conn.execute(sa.select(subscribers.c.id).where(self.identify(address))).first()
                if row is None:
                    result[str(address)] = None
                    continue
                have = set(tags_of(conn, [row.id]).get(row.id, ()))
                if removed:
                    conn.execute(
                        subscriber_tags.delete().where(
                            subscriber_tags.c.subscriber_id == row.id, subscriber_tags.c.tag.in_(removed)
                        )
                    )
                new = [t for t in dict.fromkeys(added) if t not in have or t in removed]
                if new:
                    conn.execute(subscriber_tags.insert(), [{"subscriber_id": row.id, "tag": t} for t in new])
                if new or have & set(removed):
                    conn.execute(
                        subscribers.update().where(subscribers.c.id == row.id).values(updated_at=utc_now())
                    )
                result[str(address)] = tuple(sorted((have - set(removed)) | set(added)))
        return result


def add_tags(conn: Connection, tags: dict[str, list[str]]) -> None:
    """Insert new tags, by email key (the subscribers exist: just inserted or found)."""
    if not tags:
        return
    keys = list(tags)
    rows = []
    for start in range(0, len(keys), _CHUNK):
        query = sa.select(subscribers.c.id, subscribers.c.email_key).where(
            subscribers.c.email_key.in_(keys[start : start + _CHUNK])
        )
        for subscriber_id, key in conn.execute(query):
            rows.extend({"subscriber_id": subscriber_id, "tag": tag} for tag in tags[key])
    if rows:
        conn.execute(subscriber_tags.insert(), rows)


def tags_of(conn: Connection, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The tags of the subscribers `ids`, sorted, by id (ids without tags left out)."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = (
            sa.select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
            .where(subscriber_tags.c.subscriber_id.in_(ids[start : start + _CHUNK]))
            .order_by(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
        )
        for subscriber_id, tag in conn.execute(query):
            found.setdefault(subscriber_id, []).append(tag)
    return {k: tuple(v) for k, v in found.items()}
