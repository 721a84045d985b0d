"""Reads a Disqus export (its XML of threads and posts) into an Export."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from service.imports.export import (
    Export,
    ExportedComment,
    ExportedPost,
    Fate,
    ImportInvalid,
    iso_date,
    read_xml,
    required,
    text_of,
)

NS = "{http://disqus.com}"
DSQ_ID = "{http://disqus.com/disqus-internals}id"


def _dsq_id(path: Path, element: etree._Element) -> str:
    """The dsq:id attribute of an element, or ImportInvalid naming the line."""
    value = (element.get(DSQ_ID) or "").strip()
    if not value:
        raise ImportInvalid(
            f"{path}, line {element.sourceline}: the <{etree.QName(element).localname}> there "
            "has no dsq:id attribute, which every one needs; nothing was imported."
        )
    return value


def _true(element: etree._Element | None) -> bool:
    return text_of(element).lower() == "true"


def read_disqus(path: Path) -> Export:
    """The threads and posts of a Disqus export; ImportInvalid naming the line for anything
    replyd cannot read. Threads are kept whatever their order; posts may name parents that
    come later in the file."""
    root = read_xml(path).getroot()
    if root.tag != f"{NS}disqus":
        raise ImportInvalid(
            f"{path}, line {root.sourceline}: a Disqus export's root is <disqus "
            'xmlns="http://disqus.com">, this one is '
            f"<{etree.QName(root).localname}>; export it from your Disqus admin (Moderation > "
            "Export), or use `replyd import wordpress` for a WordPress export."
        )
    export = Export(system="disqus")
    deleted_threads: set[str] = set()
    forum = ""
    for thread in root.iterfind(f"{NS}thread"):
        thread_id = _dsq_id(path, thread)
        forum = forum or text_of(thread.find(f"{NS}forum"))
        if _true(thread.find(f"{NS}isDeleted")):
            deleted_threads.add(thread_id)
            export.skipped_posts += 1
            continue
        url = text_of(required(path, thread, f"{NS}link", "link"))
        identifier = text_of(thread.find(f"{NS}id"))
        created = thread.find(f"{NS}createdAt")
        export.posts.append(
            ExportedPost(
                key=thread_id,
                url=url,
                title=text_of(thread.find(f"{NS}title")),
                slug=identifier or _last_segment(url),
                fallback_slug=f"disqus-{thread_id}",
                author_login="",  # a thread's author is whoever first loaded the page
                created_at=iso_date(path, created) if created is not None else None,
                closed=_true(thread.find(f"{NS}isClosed")),
                line=thread.sourceline or 0,
            )
        )
    for post in root.iterfind(f"{NS}post"):
        comment = _read_post(path, forum, post)
        if comment.post_key in deleted_threads:
            comment.fate = Fate.TRASH
        export.comments.append(comment)
    return export


def _read_post(path: Path, forum: str, post: etree._Element) -> ExportedComment:
    """One Disqus post (a comment): its thread, parent, writer, time and what becomes of it."""
    post_id = _dsq_id(path, post)
    thread = post.find(f"{NS}thread")
    if thread is None:
        raise ImportInvalid(
            f"{path}, line {post.sourceline}: the <post> there has no <thread>, so it belongs "
            "under no page; nothing was imported."
        )
    parent = post.find(f"{NS}parent")
    author = post.find(f"{NS}author")
    if _true(post.find(f"{NS}isSpam")):
        fate = Fate.SPAM
    elif _true(post.find(f"{NS}isDeleted")):
        fate = Fate.TRASH
    elif text_of(post.find(f"{NS}isApproved")).lower() == "false":
        fate = Fate.HELD
    else:
        fate = Fate.PUBLISHED
    email = "" if author is None else text_of(author.find(f"{NS}email"))
    name = "" if author is None else text_of(author.find(f"{NS}name"))
    if author is not None and not name:
        name = text_of(author.find(f"{NS}username"))
    prefix = f"disqus:{forum}:" if forum else "disqus:"
    return ExportedComment(
        key=prefix + post_id,
        post_key=_dsq_id(path, thread),
        parent_key=prefix + _dsq_id(path, parent) if parent is not None else None,
        author_name=name,
        author_email=email,
        created_at=iso_date(path, required(path, post, f"{NS}createdAt", "createdAt")),
        body_html="".join(m.itertext()) if (m := post.find(f"{NS}message")) is not None else "",
        fate=fate,
        line=post.sourceline or 0,
    )


def _last_segment(url: str) -> str:
    """The last part of a URL's path ("hello-world" of https://b.example/2012/hello-world/)."""
    try:
        return urlsplit(url).path.rstrip("/").rpartition("/")[2]
    except ValueError:
        return ""
