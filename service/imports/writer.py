"""Stores an Export: posts matched by URL or created, comments threaded, nobody mailed.

Imported comments keep their dates and their approval; each carries an import key, so a
second run finds it and adds nothing. No outbound mail is queued, nobody is subscribed, and
(store.models.Comment.import_key) the audience of later comments and the digests leave them
out: ten-year-old commenters do not start getting mail.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.controls import strip_controls_line
from service.imports.bodies import comment_text
from service.imports.export import Export, ExportedComment, ExportedPost, Fate, ImportInvalid
from service.store.models import MAX_COMMENT_CHARS, Comment, CommentStatus, Person, Post
from service.store.posts import MAX_TITLE, PostInvalid, check_post, check_post_id
from service.store.subscriptions import InvalidAddress, follower_address, person_for, save_post
from service.store.suppression import is_suppressed

MAX_KEY = 300  # comments.import_key
KEYS_PER_QUERY = 500  # import keys looked up at once (databases bound a statement's parameters)
# Commenters the export gives no usable address for: a .invalid address (RFC 6761: it never
# resolves), which replyd refuses to subscribe or mail, holding no one's real address.
ANONYMOUS_DOMAIN = "anonymous.invalid"


@dataclass
class Summary:
    """What an import did, for the operator: counts by outcome."""

    posts_added: int = 0
    posts_matched: int = 0
    posts_skipped: int = 0
    added: Counter[str] = field(default_factory=Counter)  # published, held
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why -> how many

    def lines(self) -> list[str]:
        """The summary as the command prints it."""
        added = sum(self.added.values())
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return [
            f"posts: {self.posts_added} added, {self.posts_matched} matched by URL, "
            f"{self.posts_skipped} skipped (not published, or not posts)",
            f"comments: {added} added ({self.added['published']} published, "
            f"{self.added['held']} held for moderation), {self.already} already imported",
            f"skipped comments: {skipped}",
        ]


def _stored_key(key: str) -> str:
    """An import key that fits its column: a long one keeps its start and a hash of all."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 65] + ":" + hashlib.sha256(key.encode()).hexdigest()


def url_key(url: str) -> str:
    """A post URL as matching compares it: http or https, host case, a trailing slash and a
    fragment make no difference (a blog moved to https is the same blog)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.strip()
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{port}{parts.path.rstrip('/')}{query}"


class ImportWriter:
    """Writes one export in the caller's transaction; raises ImportInvalid (nothing kept)."""

    def __init__(self, session: Session, export: Export, source: str, author_email: str) -> None:
        self.session = session
        self.export = export
        self.source = source  # the file, as messages name it
        self.author_email = author_email
        self.summary = Summary(posts_skipped=export.skipped_posts)
        self.people: dict[str, Person] = {}

    def write(self) -> Summary:
        """Store the export's posts and comments; return what was done."""
        commented = {c.post_key for c in self.export.comments if c.fate in _KEPT}
        posts = self._posts(commented)
        self._comments(posts)
        return self.summary

    def _posts(self, commented: set[str]) -> dict[str, int]:
        """Each exported post's id here, matched by URL or created; export key -> post id."""
        known = {url_key(p.url): p for p in self.session.scalars(select(Post))}
        found: dict[str, int] = {}
        for exported in self.export.posts:
            match = known.get(url_key(exported.url))
            if match is not None:
                found[exported.key] = match.id
                self.summary.posts_matched += 1
            elif self.export.system == "wordpress" or exported.key in commented:
                # A Disqus thread is any page once loaded: only those with comments matter.
                post = self._create_post(exported)
                known[url_key(post.url)] = post
                found[exported.key] = post.id
                self.summary.posts_added += 1
        return found

    def _create_post(self, exported: ExportedPost) -> Post:
        """A new post for an exported one, under a free, well-formed id; nobody is told."""
        # Both systems write titles and names HTML-escaped ("Tom &amp; Jerry", "&#8217;").
        title = strip_controls_line(html.unescape(exported.title))[:MAX_TITLE].strip()
        title = title or exported.url
        slug = self._free_slug(exported)
        try:
            checked = check_post(slug, title[:MAX_TITLE], exported.url)
        except PostInvalid as exc:
            raise ImportInvalid(
                f"{self.source}, line {exported.line}: {exc}; nothing was imported."
            ) from None
        post, _ = save_post(
            self.session,
            checked.slug,
            title=checked.title,
            url=checked.url,
            author=self._post_author(exported),
            closed=exported.closed,
        )
        if exported.created_at is not None:
            post.created_at = exported.created_at
        return post

    def _free_slug(self, exported: ExportedPost) -> str:
        """The export's own id for the post if well formed and free, else a made-up one;
        never the id of another post (save_post would overwrite it)."""
        candidates = []
        with contextlib.suppress(PostInvalid):
            candidates.append(check_post_id(exported.slug))
        candidates.append(exported.fallback_slug)
        for n in range(2, 1000):
            candidates.append(f"{exported.fallback_slug}-{n}")
        for slug in candidates:
            if self.session.scalar(select(Post.id).where(Post.slug == slug)) is None:
                return slug
        raise ImportInvalid(f"{self.source}, line {exported.line}: no free id for this post.")

    def _post_author(self, exported: ExportedPost) -> Person:
        """Who wrote the post: the export's author by login if it gives their address, else
        the operator's --author-email, else ImportInvalid saying to give one."""
        email = self.export.author_emails.get(exported.author_login, "")
        name = self.export.author_names.get(exported.author_login, "") or exported.author_login
        for candidate in (email, self.author_email):
            if not candidate:
                continue
            try:
                address = follower_address(candidate)
            except InvalidAddress as exc:
                if candidate == self.author_email:
                    raise ImportInvalid(f"--author-email: {exc}") from None
                continue
            known = self.session.scalar(select(Person).where(Person.email == address))
            if known is not None:
                return known
            shown = strip_controls_line(html.unescape(name))[:200]
            person = person_for(self.session, address, shown)
            return person
        who = f"by {exported.author_login!r}" if exported.author_login else "by nobody named"
        raise ImportInvalid(
            f"{self.source}, line {exported.line}: the post {exported.url} was written "
            f"{who}, and the export gives no address for them; give the blog author's with "
            "--author-email. Nothing was imported."
        )

    def _comments(self, posts: dict[str, int]) -> None:
        """Store the comments to keep, parents before answers; count the rest."""
        comments = self.export.comments
        by_key: dict[str, ExportedComment] = {}
        for comment in comments:
            by_key.setdefault(comment.key, comment)
        existing = self._existing({_stored_key(c.key) for c in comments})
        ids: dict[str, int] = {}  # export key -> comment id here, this run's and earlier ones
        todo: list[ExportedComment] = []
        seen: set[str] = set()
        for comment in comments:
            if comment.key in seen:  # a broken export listing a comment twice: once is enough
                self.summary.skipped["listed twice in the file"] += 1
                continue
            seen.add(comment.key)
            stored = existing.get(_stored_key(comment.key))
            if stored is not None:
                ids[comment.key] = stored
                if comment.fate in _KEPT:
                    self.summary.already += 1
            elif comment.fate not in _KEPT:
                self.summary.skipped[_SKIPPED[comment.fate]] += 1
            elif comment.post_key not in posts:
                self.summary.skipped["on posts not imported"] += 1
            else:
                todo.append(comment)
        # Oldest first, so ids (which pages and feeds order by) follow the dates; and parents
        # first: an answer is stored once the comment it answers has an id here.
        todo.sort(key=lambda c: (c.created_at, c.line))
        while todo:
            pending = {c.key for c in todo}
            waiting = []
            for comment in todo:
                parent = self._kept_parent(comment, by_key)
                if parent is not None and parent.key not in ids and parent.key in pending:
                    waiting.append(comment)
                    continue
                parent_id = ids.get(parent.key) if parent is not None else None
                new = self._store(comment, posts[comment.post_key], parent_id)
                if new is not None:
                    ids[comment.key] = new
            if len(waiting) == len(todo):  # answers going round in a circle: break it
                waiting[0].parent_key = None
            todo = waiting

    def _kept_parent(
        self, comment: ExportedComment, by_key: dict[str, ExportedComment]
    ) -> ExportedComment | None:
        """The nearest comment up the chain that is kept on the same post: an answer to a
        spam or deleted comment moves up to what that one answered."""
        seen = {comment.key}
        key = comment.parent_key
        while key is not None and key not in seen:
            seen.add(key)
            parent = by_key.get(key)
            if parent is None:
                return None
            if parent.fate in _KEPT and parent.post_key == comment.post_key:
                return parent
            key = parent.parent_key
        return None

    def _existing(self, keys: set[str]) -> dict[str, int]:
        """The comments here already imported under any of `keys`: key -> comment id."""
        found: dict[str, int] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), KEYS_PER_QUERY):
            batch = ordered[start : start + KEYS_PER_QUERY]
            rows = self.session.execute(
                select(Comment.import_key, Comment.id).where(Comment.import_key.in_(batch))
            )
            found.update({key: id_ for key, id_ in rows if key is not None})
        return found

    def _store(self, comment: ExportedComment, post_id: int, parent_id: int | None) -> int | None:
        """Store one comment as published or held, with its own dates; None if skipped."""
        body = comment_text(comment.body_html, newlines_are_breaks=comment.newlines_are_breaks)
        if not body:
            self.summary.skipped["empty"] += 1
            return None
        if len(body) > MAX_COMMENT_CHARS:
            self.summary.skipped[f"longer than {MAX_COMMENT_CHARS} characters"] += 1
            return None
        author = self._commenter(comment)
        if author is None:
            self.summary.skipped["by people who asked to be forgotten"] += 1
            return None
        published = comment.fate == Fate.PUBLISHED
        row = Comment(
            post_id=post_id,
            parent_id=parent_id,
            author_id=author.id,
            body=body,
            source=self.export.system,
            created_at=comment.created_at,
            status=CommentStatus.PUBLISHED if published else CommentStatus.HELD,
            published_at=comment.created_at if published else None,
            import_key=_stored_key(comment.key),
        )
        self.session.add(row)
        self.session.flush()
        self.summary.added["published" if published else "held"] += 1
        return row.id

    def _commenter(self, comment: ExportedComment) -> Person | None:
        """The comment's writer: the person with their address (their name kept if known),
        or an anonymous record when the export has no usable address; None when the address
        asked replyd to forget it."""
        name = strip_controls_line(html.unescape(comment.author_name))[:200]
        try:
            email = follower_address(comment.author_email)
        except InvalidAddress:
            digest = hashlib.sha256(f"{self.export.system}\0{name}".encode()).hexdigest()
            email = f"import-{digest[:24]}@{ANONYMOUS_DOMAIN}"
        if email in self.people:
            return self.people[email]
        if is_suppressed(self.session, email):
            return None
        person = self.session.scalar(select(Person).where(Person.email == email))
        if person is None:
            # Made directly: person_for refuses .invalid addresses (rightly, for followers).
            person = Person(email=email, display_name=name)
            self.session.add(person)
            self.session.flush()
        elif not person.display_name and name:
            person.display_name = name  # a name they already go by here is newer: kept
        self.people[email] = person
        return person


_KEPT = (Fate.PUBLISHED, Fate.HELD)
_SKIPPED = {Fate.SPAM: "spam", Fate.TRASH: "deleted or trashed", Fate.PINGBACK: "pingbacks"}
