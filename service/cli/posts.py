"""`replyd post`, `subscribe`, `unsubscribe`, `address` and `comments`: the blog's side."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.common import (
    AddCommand,
    CommandError,
    components,
    person_at,
    post_named,
    print_json,
    row_id,
)
from service.controls import escape_controls, escape_controls_line


def cmd_post_add(args: argparse.Namespace) -> int:
    """Create a post, or update it if the blog's id is already known."""
    from service.controls import strip_controls_line
    from service.outbound.new_posts import announce_post
    from service.store.posts import PostInvalid, check_post
    from service.store.subscriptions import save_post

    try:
        # The same checks save_post makes, before anything is opened: a bad post is a
        # sentence and exit 2, whatever state the database is in (a title with control
        # characters is refused, as the API refuses it).
        checked = check_post(args.id, args.title, args.url)
    except PostInvalid as exc:
        raise CommandError(f"{exc}; see `replyd post add --help`.") from None
    # Names go into mail headers, pages and the feed: one line, no controls.
    name = strip_controls_line(args.author_name or "")
    parts = components()
    with parts.session_factory.begin() as session:
        author = person_at(session, args.author_email, name)
        post, created = save_post(
            session,
            checked.slug,
            title=checked.title,
            url=checked.url,
            author=author,
            closed=args.closed,
        )
        slug = post.slug
        # A new post goes to the blog's followers (queued with it); an update to nobody.
        announced = announce_post(session, post, parts.book, parts.keyring) if created else None
    if announced is None:
        print(f"updated post {slug!r}")
    elif any(announced):
        print(
            f"added post {slug!r}; its mail is queued for {announced.mailed} of the blog's "
            f"followers, and {announced.in_digests} more get it in their next digest"
        )
    else:
        print(f"added post {slug!r}")
    return 0


def cmd_post_close(args: argparse.Namespace) -> int:
    """Close a post: replies to it are rejected from now on."""
    parts = components()
    with parts.session_factory.begin() as session:
        post_named(session, args.id).closed = True
    print(f"closed post {args.id!r}")
    return 0


def cmd_post_list(args: argparse.Namespace) -> int:
    """List posts."""
    from sqlalchemy import select

    from service.store.models import Post

    parts = components()
    with parts.session_factory() as session:
        posts = session.scalars(select(Post).order_by(Post.id)).all()
        rows = [
            {
                "id": p.slug,
                "title": p.title,
                "url": p.url,
                "author_email": p.author.email,
                "author_name": p.author.display_name,
                "closed": p.closed,
            }
            for p in posts
        ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            state = "closed" if row["closed"] else "open"
            fields = [str(row["id"]), state, str(row["title"]), str(row["url"])]
            print("\t".join(escape_controls_line(field) for field in fields))
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Make someone follow a post, per comment or by digest; or, with --all, the blog's new
    posts, each by mail or in a digest."""
    from service.store.blog_following import follow_blog
    from service.store.subscriptions import (
        AskedToBeForgotten,
        check_subscribable,
        set_following,
    )

    parts = components()
    with parts.session_factory.begin() as session:
        post = post_named(session, args.post) if args.post is not None else None
        try:
            check_subscribable(
                session, args.email.strip().lower(), asked_by_person=args.asked_by_person
            )
        except AskedToBeForgotten as exc:
            raise CommandError(
                f"{exc}; if they did, run this again with --asked-by-person."
            ) from None
        person = person_at(session, args.email)
        if post is None:
            follow_blog(session, person.id, active=True, digest=args.digest)
        else:
            set_following(session, post.id, person.id, active=True, digest=args.digest)
        # Asking for mail again is consent to try the address again after bounces.
        person.suspended_at, person.bounce_score = None, 0.0
    if post is None:
        print(f"{args.email} follows every new post ({args.digest or 'a mail for each'})")
    else:
        print(f"{args.email} follows {args.post!r} ({args.digest or 'each comment'})")
    return 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    """Stop someone's mail about a post (and keep them from being re-subscribed by commenting);
    with --all, about the blog's new posts."""
    from service.store.blog_following import follow_blog
    from service.store.subscriptions import set_following

    parts = components()
    with parts.session_factory.begin() as session:
        post = post_named(session, args.post) if args.post is not None else None
        # Anyone known can be switched off, whatever their address.
        person = person_at(session, args.email, following=False)
        if post is None:
            follow_blog(session, person.id, active=False)
        else:
            set_following(session, post.id, person.id, active=False)
    if post is None:
        print(f"{args.email} no longer gets mail about new posts")
    else:
        print(f"{args.email} no longer gets mail about {args.post!r}")
    return 0


def cmd_address(args: argparse.Namespace) -> int:
    """Print the reply address for a person on a post (or under a comment)."""
    from service.identity.addresses import ReplyTarget
    from service.store.models import Comment

    parts = components()
    with parts.session_factory.begin() as session:
        post = post_named(session, args.post)
        person = person_at(session, args.email)
        if args.comment is not None:
            comment = session.get(Comment, args.comment)
            if comment is None or comment.post_id != post.id:
                raise CommandError(
                    f"post {args.post!r} has no comment {args.comment}; "
                    f"see `replyd comments --post {args.post}`."
                )
        target = ReplyTarget(post.id, args.comment, person.id)
    print(parts.book.reply_address(target, parts.keyring))
    return 0


def cmd_comments(args: argparse.Namespace) -> int:
    """List a post's comments in thread order, by status (all but deleted ones by default)."""
    from sqlalchemy import select

    from service.store.models import Comment, CommentStatus

    parts = components()
    with parts.session_factory() as session:
        post = post_named(session, args.post)
        query = select(Comment).where(Comment.post_id == post.id).order_by(Comment.id)
        if args.status == "all":
            query = query.where(Comment.status != CommentStatus.DELETED)
        else:
            query = query.where(Comment.status == args.status)
        comments = session.scalars(query).all()
        rows: list[dict[str, Any]] = [
            {
                "id": c.id,
                "parent_id": c.parent_id,
                "author_email": c.author.email,
                "author_name": c.author.display_name,
                "body": c.body,
                "elided": c.elided,
                "source": c.source,
                "inbound_id": c.inbound_email_id,
                "created_at": c.created_at.isoformat(),
                "status": c.status,
            }
            for c in comments
        ]
    if args.json:
        print_json(rows)
        return 0
    children: dict[int | None, list[dict[str, Any]]] = {}
    listed = {row["id"] for row in rows}
    for row in rows:
        # An answer whose parent is not listed (another status) stands at the top level.
        parent = row["parent_id"] if row["parent_id"] in listed else None
        children.setdefault(parent, []).append(row)

    def show(parent: int | None, depth: int) -> None:
        for row in children.get(parent, []):
            indent = "    " * depth
            # Stored before control characters were removed on the way in, text could still
            # hold some: shown escaped, never acted on by the terminal.
            author = escape_controls_line(row["author_name"] or row["author_email"])
            status = "" if row["status"] == "published" else f" [{row['status']}]"
            print(f"{indent}#{row['id']}{status} {author} ({row['created_at'][:16]})")
            for line in row["body"].splitlines():
                print(f"{indent}  {escape_controls(line)}")
            show(row["id"], depth + 1)

    show(None, 0)
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add post, subscribe, unsubscribe, address and comments to the parser."""
    post = commands.add_parser("post", help="add, close or list posts").add_subparsers(
        dest="post_command", required=True, metavar="COMMAND"
    )
    post_add = add("add", cmd_post_add, "add a post (or update one with the same id)", post)
    post_add.add_argument("--id", required=True, help="the post's id on the blog, e.g. its slug")
    post_add.add_argument("--title", required=True, help="the post's title, as mail shows it")
    post_add.add_argument("--url", required=True, help="the post's address (http/https)")
    post_add.add_argument("--author-email", required=True, help="the author's email address")
    post_add.add_argument("--author-name", default="", help="the author's name, as mail shows it")
    post_add.add_argument("--closed", action="store_true", help="refuse replies to this post")
    close = add("close", cmd_post_close, "refuse further replies to a post", post)
    close.add_argument("id", help="the post's id on the blog")
    listing = add("list", cmd_post_list, "list posts", post)
    listing.add_argument("--json", action="store_true", help="one JSON array instead of lines")

    sub = add("subscribe", cmd_subscribe, "make someone follow a post, or every new post")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--post", help="the post's id on the blog")
    which.add_argument(
        "--all",
        action="store_true",
        help="every new post on the blog instead: each is mailed when it is added, and a "
        "reply to that mail comments on it",
    )
    sub.add_argument("--email", required=True, help="the follower's email address")
    sub.add_argument(
        "--digest",
        choices=["daily", "weekly"],
        default=None,
        help="one mail a day or week instead of one per comment (with --all, per new post)",
    )
    sub.add_argument(
        "--asked-by-person",
        action="store_true",
        help="the person asked for this themselves: needed for an address that asked to be "
        "forgotten, which is otherwise never subscribed or mailed again",
    )
    unsub = add("unsubscribe", cmd_unsubscribe, "stop someone's mail about a post, or new posts")
    unsub_which = unsub.add_mutually_exclusive_group(required=True)
    unsub_which.add_argument("--post", help="the post's id on the blog")
    unsub_which.add_argument(
        "--all", action="store_true", help="stop the mail about the blog's new posts instead"
    )
    unsub.add_argument("--email", required=True, help="the follower's email address")

    address = add("address", cmd_address, "print a person's reply address for a post or comment")
    address.add_argument("--post", required=True, help="the post's id on the blog")
    address.add_argument("--email", required=True, help="whose address it is")
    address.add_argument(
        "--comment", type=row_id, default=None, help="the comment id the reply answers"
    )

    comments = add("comments", cmd_comments, "show a post's comments in thread order")
    comments.add_argument("--post", required=True, help="the post's id on the blog")
    comments.add_argument(
        "--status",
        choices=["held", "published", "hidden", "all"],
        default="all",
        help="only comments waiting for approval, published or hidden (default: all of them)",
    )
    comments.add_argument("--json", action="store_true", help="one JSON array instead of text")
