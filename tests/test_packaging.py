"""What ships stays consistent: the schema history matches the models, Docker matches `make run`."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.store.engine import make_engine
from service.store.models import Base
from service.store.schema import HEAD_REVISION, alembic_config

ROOT = Path(__file__).resolve().parent.parent


class TestMigrations:
    def test_migrations_produce_exactly_the_models(self, migrated_template: Path) -> None:
        """After `replyd db upgrade` the tables equal the models: no change lacks a migration."""
        engine = make_engine(f"sqlite:///{migrated_template}")
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"render_as_batch": True})
                differences = compare_metadata(context, Base.metadata)
        finally:
            engine.dispose()
        assert differences == []

    def test_the_fast_schema_check_names_alembics_head(self) -> None:
        """HEAD_REVISION (checked without alembic) is the newest migration alembic knows."""
        engine = make_engine("sqlite://")
        try:
            head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        finally:
            engine.dispose()
        assert head == HEAD_REVISION


class TestDockerfile:
    def test_image_runs_the_same_steps_as_make_run(self) -> None:
        """The image migrates then serves, as `make run` does (demo data aside)."""
        makefile = (ROOT / "Makefile").read_text()
        run_block = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
        make_steps = [s for s in re.findall(r"replyd (\w+(?: \w+)?)", run_block) if s != "demo"]
        dockerfile = (ROOT / "Dockerfile").read_text()
        cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
        docker_steps = re.findall(r"replyd (\w+(?: \w+)?)", cmd)
        assert make_steps == docker_steps == ["db upgrade", "serve"]

    def test_image_ships_what_the_daemon_reads(self) -> None:
        """The image copies the package and templates and exposes the SMTP and HTTP ports."""
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert "COPY service ./service" in dockerfile
        assert "COPY templates ./templates" in dockerfile
        assert re.search(r"^EXPOSE 2525 8025$", dockerfile, re.M)
        assert "USER replyd" in dockerfile
