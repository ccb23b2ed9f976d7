"""Publishing the built archive site to an S3 bucket (or any S3-compatible store).

Only the files the build recorded in its manifest are uploaded: never a dot-file, a
symlink or anything else that happens to sit in the folder (a `.git/config` with a
token, a `.env`). Only files whose MD5 differs from the object's ETag are uploaded,
each with a Content-Type carrying its charset and a Cache-Control suited to it: HTML
and feeds are revalidated after a few minutes, fingerprinted assets are cached for a year.

Each publish records the keys it published in an object under the prefix
(PUBLISHED); `delete` removes only keys an earlier publish recorded, so other sites,
logs and backups in the same bucket are never touched. With an empty prefix and
other objects in the bucket, `delete` is refused unless `delete_foreign` is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.archive.site import MANIFEST
from newsletter.errors import NewsletterError

ENDPOINT_ENV = "NEWSLETTER_S3_ENDPOINT_URL"
SHORT_CACHE = "public, max-age=300"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# assets/site.1a2b3c4d.css: the name changes whenever the content does
FINGERPRINTED = re.compile(r"(^|/)assets/.+\.[0-9a-f]{8}\.[A-Za-z0-9]+$")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml; charset=utf-8",
    ".webmanifest": "application/manifest+json; charset=utf-8",
}
SPECIAL_TYPES = {
    "feed.xml": "application/atom+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
}
DELETE_BATCH = 1000  # the most DeleteObjects takes at once
PUBLISHED = ".newsletter-published.json"  # under the prefix: the keys the last publish put there
PUBLISHED_VERSION = 1


class PublishError(NewsletterError):
    """The site cannot be published (not built, bucket, credentials, permissions)."""


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative to the site folder, '/'-separated
    key: str  # the object key (prefix + path)
    md5: str
    size: int
    content_type: str
    cache_control: str


@dataclass
class PublishReport:
    """What a publish did (or, with dry_run, would do)."""

    bucket: str
    prefix: str
    uploaded: list[str] = field(default_factory=list)  # object keys
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # published earlier, not in the site, kept (no --delete)
    foreign: list[str] = field(default_factory=list)  # under the prefix but never published from here: kept
    dry_run: bool = False


def content_type(path: str) -> str:
    """The Content-Type for a site file, with a charset for every text type."""
    name = path.rsplit("/", 1)[-1]
    if name in SPECIAL_TYPES and "/" not in path:
        return SPECIAL_TYPES[name]
    suffix = os.path.splitext(name)[1].lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def cache_control(path: str) -> str:
    return IMMUTABLE_CACHE if FINGERPRINTED.search(path) else SHORT_CACHE


def normalise_prefix(prefix: str | None) -> str:
    """'' or 'a/b/': no leading slash, one trailing slash.

    Raises PublishError for a prefix a browser could not reach: '.', '..' or empty
    segments (browsers and CDNs normalise them away), backslashes, control characters.
    """
    given = prefix or ""
    prefix = given.strip("/")
    if prefix and (
        any(part in ("", ".", "..") for part in prefix.split("/"))
        or "\\" in prefix
        or any(ord(c) < 32 or ord(c) == 127 for c in prefix)
    ):
        raise PublishError(
            f"--prefix {given!r}: expected folder names separated by '/', such as 'digest' or "
            "'sites/digest', without '.', '..', '//', backslashes or control characters"
        )
    return f"{prefix}/" if prefix else ""


def local_files(site_dir: Path, prefix: str = "") -> list[LocalFile]:
    """The files the build made (its manifest's list), with their keys, MD5s and headers.

    Anything else in the folder is not part of the site. A listed file that is a
    symlink, lies under a dot-folder or in a symlinked folder, or whose content is not
    what the build wrote is refused: publishing it could leak something else.
    """
    manifest_path = site_dir / MANIFEST
    if not manifest_path.is_file():
        raise PublishError(
            f"{site_dir}: no built site here (expected {MANIFEST} from a build)\n\n"
            "Run `newsletter archive build` first, or pass the folder with --out."
        )
    listed = _manifest_files(manifest_path)
    root = site_dir.resolve()
    files = []
    for rel in sorted(listed):
        path = site_dir / rel
        if any(part.startswith(".") for part in rel.split("/")) or not _plain_file_inside(path, root):
            raise PublishError(
                f"{site_dir}/{rel}: expected a plain file the build wrote, got a symlink, a hidden "
                "path or nothing\n\nRun `newsletter archive build` again, then publish."
            )
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != listed[rel]:
            raise PublishError(
                f"{site_dir}/{rel}: changed since the build (its content is not what the build wrote)\n\n"
                "Run `newsletter archive build` again, then publish."
            )
        files.append(
            LocalFile(
                path=rel,
                key=prefix + rel,
                md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                size=len(data),
                content_type=content_type(rel),
                cache_control=cache_control(rel),
            )
        )
    return files


def _manifest_files(manifest_path: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file the build recorded."""
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = data["files"]
        listed = {path: record["sha256"] for path, record in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise PublishError(
            f"{manifest_path}: expected the build manifest, got something unreadable\n\n"
            "Run `newsletter archive build` again, then publish."
        ) from None
    bad = [p for p in listed if not isinstance(p, str) or not _plain_relative(p)]
    if bad:
        raise PublishError(
            f"{manifest_path}: files: expected relative paths inside the site, got {bad[0]!r}\n\n"
            "Run `newsletter archive build` again, then publish."
        )
    return listed


def _plain_relative(path: str) -> bool:
    parts = path.split("/")
    return not (
        path.startswith("/")
        or "\\" in path
        or "\0" in path
        or re.match(r"^[A-Za-z]:", path)
        or any(p in ("", ".", "..") for p in parts)
    )


def _plain_file_inside(path: Path, root: Path) -> bool:
    """A regular file reached through no symlink at all (neither it nor a folder on the way)."""
    current = path
    while current != current.parent and current.resolve() != root:
        if current.is_symlink():
            return False
        current = current.parent
    return path.is_file() and path.resolve().is_relative_to(root)


def s3_client(endpoint_url: str | None = None):
    """A boto3 S3 client; the endpoint from the argument or NEWSLETTER_S3_ENDPOINT_URL."""
    import boto3

    # A fresh session: boto3's default one caches the credentials it first found.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV) or None)


def remote_etags(client, bucket: str, prefix: str) -> dict[str, str]:
    """Object key -> ETag (quotes removed) for every object under the prefix."""
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


def publish_site(
    site_dir: Path | str,
    bucket: str,
    *,
    prefix: str | None = None,
    delete: bool = False,
    delete_foreign: bool = False,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    client: Any = None,
) -> PublishReport:
    """Upload the changed files of a built site to s3://bucket/prefix; optionally delete stale objects.

    Stale objects are the keys an earlier publish recorded that the site no longer has;
    `delete_foreign` also deletes every other object under the prefix (with an empty
    prefix: the whole bucket), which `delete` alone refuses to do when the prefix is empty.
    """
    site_dir = Path(site_dir)
    prefix = normalise_prefix(prefix)
    files = local_files(site_dir, prefix)
    report = PublishReport(bucket=bucket, prefix=prefix, dry_run=dry_run)
    record_key = prefix + PUBLISHED
    with _s3_errors(bucket, prefix):
        client = client or s3_client(endpoint_url)
        remote = remote_etags(client, bucket, prefix)
        recorded = _recorded_keys(client, bucket, record_key) if record_key in remote else set()
        ours = {f.key for f in files}
        others = set(remote) - ours - {record_key}
        stale = sorted(others & recorded)
        report.foreign = sorted(others - recorded)
        if delete and not prefix and report.foreign and not delete_foreign:
            shown = ", ".join(report.foreign[:3]) + (
                f" and {len(report.foreign) - 3} more" if len(report.foreign) > 3 else ""
            )
            raise PublishError(
                f"s3://{bucket}/: --delete: the bucket holds {len(report.foreign)} object(s) no publish of "
                f"this site made: {shown}\n\n"
                "Nothing was changed. Publish under a --prefix of its own, drop --delete, or add "
                "--yes-delete-foreign to delete them too."
            )
        for item in files:
            # A multipart ETag ("…-3") is not an MD5: such an object is simply uploaded again.
            if remote.get(item.key) == item.md5:
                report.unchanged.append(item.key)
                continue
            if not dry_run:
                data = (site_dir / item.path).read_bytes()
                client.put_object(
                    Bucket=bucket,
                    Key=item.key,
                    Body=data,
                    ContentType=item.content_type,
                    CacheControl=item.cache_control,
                    ContentMD5=base64.b64encode(bytes.fromhex(item.md5)).decode(),
                )
            report.uploaded.append(item.key)
        doomed: list[str] = []
        if not delete:
            report.stale = stale
        else:
            doomed = sorted(stale + report.foreign) if delete_foreign else stale
            report.foreign = [] if delete_foreign else report.foreign
        for batch in _batches(doomed, DELETE_BATCH):
            if not dry_run:
                _delete(client, bucket, batch)
            report.deleted.extend(batch)
        if not dry_run:
            # Written last: a publish cut short leaves the earlier record, so a retry still
            # knows (and may delete) every key this site put there.
            _record_keys(client, bucket, record_key, sorted(ours | set(report.stale)))
    return report


def _recorded_keys(client: Any, bucket: str, key: str) -> set[str]:
    """The keys the last publish under this prefix recorded (none if the record is unreadable)."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        data = json.loads(body)
        return (
            {k for k in data["keys"] if isinstance(k, str)}
            if data.get("version") == PUBLISHED_VERSION
            else set()
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def _record_keys(client: Any, bucket: str, key: str, keys: list[str]) -> None:
    body = json.dumps(
        {"version": PUBLISHED_VERSION, "generator": "newsletter", "keys": keys}, indent=0
    ).encode()
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json; charset=utf-8",
        CacheControl="no-store",
    )


def _delete(client: Any, bucket: str, batch: list[str]) -> None:
    answer = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
    )
    if answer.get("Errors"):
        first = answer["Errors"][0]
        raise PublishError(
            f"s3://{bucket}/{first.get('Key', '')}: cannot delete: "
            f"{first.get('Code', 'error')}: {first.get('Message', '')}".rstrip(": ")
        )


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def _s3_errors(bucket: str, prefix: str) -> Iterator[None]:
    """Turn botocore's exceptions into one-line errors that say what to check."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = f"s3://{bucket}/{prefix}"
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise PublishError(
            f"{where}: no AWS credentials found\n\n"
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, in the environment."
        ) from None
    except EndpointConnectionError as exc:
        raise PublishError(
            f"{where}: cannot reach the S3 endpoint {exc.kwargs.get('endpoint_url')}"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message", "")
        if code in ("NoSuchBucket", "404", "NotFound"):
            raise PublishError(
                f"s3://{bucket}: no such bucket\n\n"
                "Check --bucket and the endpoint or region; the bucket must exist before publishing."
            ) from None
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            raise PublishError(
                f"{where}: access denied\n\n"
                "The credentials need s3:ListBucket, s3:PutObject and (with --delete) s3:DeleteObject."
            ) from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            raise PublishError(f"{where}: the AWS credentials were refused ({code}: {message})") from None
        raise PublishError(f"{where}: S3 error {code}: {message}") from None
    except BotoCoreError as exc:
        raise PublishError(f"{where}: {exc}") from None
