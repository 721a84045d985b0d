"""`replyd import wordpress|disqus FILE`: old comments brought over, nobody mailed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.cli.common import AddCommand, CommandError, components
from service.controls import escape_controls


def cmd_import(args: argparse.Namespace) -> int:
    """Read the whole export, then store it in one transaction and print what was done."""
    from sqlalchemy.exc import IntegrityError

    from service.imports.disqus import read_disqus
    from service.imports.export import ImportInvalid
    from service.imports.wordpress import read_wordpress
    from service.imports.writer import ImportWriter

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(
            f"{args.file}: no such file; give the path of the {args.system_name} export "
            f"({args.how_to_export})."
        )
    reader = read_wordpress if args.system == "wordpress" else read_disqus
    parts = components()
    try:
        # Read and checked whole before anything is written; then written in one
        # transaction, so a failure leaves the database as it was.
        export = reader(path)
        with parts.session_factory.begin() as session:
            summary = ImportWriter(session, export, str(path), args.author_email or "").write()
    except ImportInvalid as exc:
        raise CommandError(escape_controls(str(exc))) from None
    except IntegrityError:
        # Another import of the same comments committed first; this one was undone whole.
        raise CommandError(
            "another import of these comments finished while this one ran; nothing of this "
            "run was kept: run it again to add whatever is still missing."
        ) from None
    print(f"imported {args.system_name} export {escape_controls(str(path))}")
    for line in summary.lines():
        print("  " + line)
    return 0


def register(add: AddCommand, commands: Any) -> None:
    """Add `import wordpress` and `import disqus`."""
    group = commands.add_parser(
        "import",
        help="import old comments from a WordPress or Disqus export (nobody is mailed)",
        description="Import posts and comments from another system's export. Running it again "
        "adds nothing twice. See docs/import.md.",
    )
    systems = group.add_subparsers(dest="system", required=True, metavar="SYSTEM")
    for system, name, how in (
        ("wordpress", "WordPress", "Tools > Export > All content in WordPress's admin"),
        ("disqus", "Disqus", "Moderation > Export in Disqus's admin; it arrives by mail"),
    ):
        command = add(
            system,
            cmd_import,
            f"import the posts and comments of a {name} export file",
            systems,
        )
        command.set_defaults(system_name=name, how_to_export=how)
        command.add_argument("file", metavar="FILE.xml", help=f"the {name} export ({how})")
        command.add_argument(
            "--author-email",
            metavar="ADDRESS",
            help="the author of posts the import creates, when the export gives no address "
            "for them (Disqus never does)",
        )
