"""What ships stays consistent: the schema history matches the models, Docker matches `make run`."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
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

    def test_image_runs_as_uid_and_gid_10001(self) -> None:
        """The daemon runs as a fixed, documented UID/GID that owns /data, never as root."""
        dockerfile = (ROOT / "Dockerfile").read_text()
        users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
        assert users == ["10001:10001"]
        assert "groupadd --system --gid 10001 replyd" in dockerfile
        assert "useradd --system --uid 10001 --gid 10001" in dockerfile
        assert "chown 10001:10001 /data" in dockerfile

    def test_image_installs_the_package_not_a_checkout(self) -> None:
        """pip installs replyd with the PostgreSQL extra, not in editable mode."""
        dockerfile = (ROOT / "Dockerfile").read_text()
        installs = re.findall(r"pip install ([^\n&]*)", dockerfile)
        assert installs == ["--no-cache-dir '.[postgres]' \\"]
        assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", dockerfile)

    def test_image_checks_its_health_on_healthz(self) -> None:
        """A HEALTHCHECK asks /healthz on REPLYD_HTTP_PORT with Python (no curl in slim)."""
        dockerfile = (ROOT / "Dockerfile").read_text()
        check = dockerfile.split("HEALTHCHECK", 1)[1].split("\nCMD", 1)[0]
        assert "urllib.request.urlopen" in check
        assert "REPLYD_HTTP_PORT" in check and "/healthz" in check
        assert "curl" not in check


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
class TestMakefile:
    def dry_run(self, workdir: Path, target: str) -> str:
        """What `make -n target` would run in a copy of the project's Makefile."""
        result = subprocess.run(
            ["make", "--no-print-directory", "-n", target],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    @pytest.fixture
    def workdir(self, tmp_path: Path) -> Path:
        """A folder with the Makefile and pyproject.toml, as a fresh clone has them."""
        for name in ("Makefile", "pyproject.toml"):
            shutil.copy(ROOT / name, tmp_path / name)
        return tmp_path

    def test_run_installs_the_runtime_only(self, workdir: Path) -> None:
        """On a fresh clone `make run` installs replyd without its dev extras."""
        steps = self.dry_run(workdir, "run")
        assert "pip install --quiet -e .\n" in steps
        assert "[dev]" not in steps
        assert steps.rstrip().endswith("replyd serve")

    def test_test_after_run_adds_the_dev_extras(self, workdir: Path) -> None:
        """After `make run`, `make test` still installs the dev tools it needs, and a second
        `make run` installs nothing."""
        (workdir / ".venv" / "bin").mkdir(parents=True)
        (workdir / ".venv" / "bin" / "python").touch()
        (workdir / ".venv" / ".installed-runtime").touch()  # what `make run` leaves
        steps = self.dry_run(workdir, "test")
        assert "pip install --quiet -e '.[dev]'" in steps
        assert "pytest" in steps
        assert "pip install" not in self.dry_run(workdir, "run")


class TestInstalledFiles:
    def test_a_normal_install_ships_every_template(self) -> None:
        """pyproject maps templates/ to the package service.templates, and its package data
        patterns take in every file there, so a non-editable install finds mail and pages."""
        setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
        assert setuptools["package-dir"]["service.templates"] == "templates"
        assert "service.templates" in setuptools["packages"]
        templates = ROOT / "templates"
        shipped = {
            path
            for pattern in setuptools["package-data"]["service.templates"]
            for path in templates.glob(pattern)
            if path.is_file()
        }
        every = {path for path in templates.rglob("*") if path.is_file()}
        assert sorted(map(str, every - shipped)) == []

    def test_a_normal_install_ships_the_migrations(self) -> None:
        """Alembic's script template and every migration are in the package."""
        setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
        assert "script.py.mako" in setuptools["package-data"]["service.store.migrations"]
        assert "service.store.migrations.versions" in setuptools["packages"]
        # Every package on disk is listed (a folder left out would be missing when installed).
        on_disk = {
            ".".join(path.parent.relative_to(ROOT).parts)
            for path in (ROOT / "service").rglob("__init__.py")
        }
        assert on_disk <= set(setuptools["packages"])
