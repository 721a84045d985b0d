"""Reads a WordPress export (WXR: RSS 2.0 with the wp: namespace) into an Export."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from service.imports.export import (
    Export,
    ExportedComment,
    ExportedPost,
    Fate,
    ImportInvalid,
    read_xml,
    required,
    sql_date,
    text_of,
)

# WXR's versions so far; the elements replyd reads are the same in each.
WP_NAMESPACES = tuple(f"http://wordpress.org/export/{v}/" for v in ("1.2", "1.1", "1.0"))
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
# What replyd takes as posts: WordPress also exports attachments, menu entries, revisions...
POST_TYPES = frozenset({"post", "page"})
APPROVAL = {"1": Fate.PUBLISHED, "0": Fate.HELD, "spam": Fate.SPAM}  # else trash and the like


def _namespace(path: Path, root: etree._Element) -> str:
    """The wp: namespace the file uses, in Clark notation, or ImportInvalid."""
    used = set(root.nsmap.values())
    for element in root.iter("{*}wxr_version", "{*}post_id", "{*}base_site_url"):
        used.add(etree.QName(element).namespace or "")
        break
    for namespace in WP_NAMESPACES:
        if namespace in used:
            return "{" + namespace + "}"
    raise ImportInvalid(
        f"{path}, line {root.sourceline}: this is not a WordPress export (no "
        "http://wordpress.org/export/ namespace); export it with Tools > Export in WordPress, "
        "or use `replyd import disqus` for a Disqus export."
    )


def read_wordpress(path: Path) -> Export:
    """Every published post and page of a WXR file with its comments; ImportInvalid naming
    the line for anything replyd cannot read."""
    root = read_xml(path).getroot()
    if etree.QName(root).localname != "rss" or root.find("channel") is None:
        raise ImportInvalid(
            f"{path}, line {root.sourceline}: a WordPress export starts with <rss><channel>, "
            f"this one with <{etree.QName(root).localname}>; is it a WordPress export?"
        )
    wp = _namespace(path, root)
    channel = root.find("channel")
    assert channel is not None
    site = text_of(channel.find(f"{wp}base_blog_url")) or text_of(channel.find("link"))
    if not site:
        raise ImportInvalid(
            f"{path}, line {channel.sourceline}: the <channel> has neither <wp:base_blog_url> "
            "nor <link>, so its comments cannot be told apart from another blog's; nothing "
            "was imported."
        )
    export = Export(system="wordpress")
    for author in channel.iterfind(f"{wp}author"):
        login = text_of(author.find(f"{wp}author_login"))
        if login:
            export.author_emails[login] = text_of(author.find(f"{wp}author_email"))
            export.author_names[login] = text_of(author.find(f"{wp}author_display_name"))
    for item in channel.iterfind("item"):
        post_type = text_of(item.find(f"{wp}post_type")) or "post"
        status = text_of(item.find(f"{wp}status"))
        if post_type not in POST_TYPES or status != "publish":
            export.skipped_posts += 1
            continue
        _read_item(path, wp, site, item, export)
    return export


def _read_item(path: Path, wp: str, site: str, item: etree._Element, export: Export) -> None:
    """One published post or page and its comments, added to `export`."""
    post_id = text_of(required(path, item, f"{wp}post_id", "wp:post_id"))
    url = text_of(required(path, item, "link", "link"))
    date = item.find(f"{wp}post_date_gmt")
    created = sql_date(path, date, text_of(date)) if date is not None else None
    if created is None and item.find(f"{wp}post_date") is not None:
        local = item.find(f"{wp}post_date")
        assert local is not None
        created = sql_date(path, local, text_of(local))
    export.posts.append(
        ExportedPost(
            key=post_id,
            url=url,
            title=text_of(item.find("title")),
            slug=text_of(item.find(f"{wp}post_name")),
            fallback_slug=f"wp-{post_id}",
            author_login=text_of(item.find(f"{DC}creator")),
            created_at=created,
            closed=text_of(item.find(f"{wp}comment_status")) == "closed",
            line=item.sourceline or 0,
        )
    )
    for comment in item.iterfind(f"{wp}comment"):
        export.comments.append(_read_comment(path, wp, site, post_id, comment))


def _read_comment(
    path: Path, wp: str, site: str, post_id: str, comment: etree._Element
) -> ExportedComment:
    """One <wp:comment>: who wrote it, when, under which comment, and what becomes of it."""
    comment_id = text_of(required(path, comment, f"{wp}comment_id", "wp:comment_id"))
    gmt = comment.find(f"{wp}comment_date_gmt")
    created = sql_date(path, gmt, text_of(gmt)) if gmt is not None else None
    if created is None:
        # An old WordPress wrote a zero GMT date; the local time is the best there is.
        local = required(path, comment, f"{wp}comment_date", "wp:comment_date")
        created = sql_date(path, local, text_of(local))
        if created is None:
            raise ImportInvalid(
                f"{path}, line {comment.sourceline}: the comment has no date; nothing was imported."
            )
    kind = text_of(comment.find(f"{wp}comment_type"))
    approved = text_of(comment.find(f"{wp}comment_approved"))
    if kind in ("pingback", "trackback"):
        fate = Fate.PINGBACK
    else:
        fate = APPROVAL.get(approved, Fate.TRASH)
    parent = text_of(comment.find(f"{wp}comment_parent"))
    content = comment.find(f"{wp}comment_content")
    return ExportedComment(
        key=f"wordpress:{site.rstrip('/')}:{comment_id}",
        post_key=post_id,
        parent_key=f"wordpress:{site.rstrip('/')}:{parent}" if parent not in ("", "0") else None,
        author_name=text_of(comment.find(f"{wp}comment_author")),
        author_email=text_of(comment.find(f"{wp}comment_author_email")),
        created_at=created,
        body_html="".join(content.itertext()) if content is not None else "",
        fate=fate,
        line=comment.sourceline or 0,
        newlines_are_breaks=True,
    )
