"""Settings: defaults, validation messages that name the variable, and a secret kept safe."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from service.runtime.settings import ConfigError, load_settings


class TestSettings:
    def test_defaults(self, tmp_path: Path) -> None:
        """With nothing set, replyd uses SQLite and a Maildir under var/ and port 2525."""
        settings = load_settings({"REPLYD_VAR_DIR": str(tmp_path)})
        assert settings.database_url == f"sqlite:///{tmp_path / 'replyd.db'}"
        assert settings.smtp_port == 2525
        assert settings.outbound.kind == "maildir"
        assert settings.outbound.path == tmp_path / "outbox"
        assert settings.max_message_bytes == 10 * 1024 * 1024

    def test_embed_origins_are_written_as_browsers_send_them(self, tmp_path: Path) -> None:
        """REPLYD_EMBED_ORIGINS: lower-cased, default ports dropped, a trailing slash and
        repeats ignored; none by default."""
        raw = "https://Blog.Example.org/, http://127.0.0.1:8080 https://blog.example.org:443"
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_EMBED_ORIGINS": raw}
        assert load_settings(env).embed_origins == (
            "https://blog.example.org",
            "http://127.0.0.1:8080",
        )
        assert load_settings({"REPLYD_VAR_DIR": str(tmp_path)}).embed_origins == ()

    def test_worker_processes_default_to_one_when_there_is_a_second_cpu(
        self, tmp_path: Path
    ) -> None:
        """By default ("auto") the edge gets a worker process beside it on a multi-core
        machine, and keeps the work in one process on a single core; a number overrides."""
        expected = 1 if (os.cpu_count() or 1) >= 2 else 0
        assert load_settings({"REPLYD_VAR_DIR": str(tmp_path)}).worker_processes == expected
        for raw, count in (("AUTO", expected), ("0", 0), ("3", 3)):
            env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_WORKER_PROCESSES": raw}
            assert load_settings(env).worker_processes == count

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("REPLYD_WORKER_PROCESSES", "many"),
            ("REPLYD_SMTP_PORT", "smtp"),
            ("REPLYD_SMTP_PORT", "70000"),
            ("REPLYD_MAX_MESSAGE_BYTES", "lots"),
            ("REPLYD_OUTBOUND", "ftp://example.org"),
            ("REPLYD_OUTBOUND", "smtp://relay.example.org?cafile=/no/such/ca.pem"),
            ("REPLYD_DOMAIN", "not a domain"),
            ("REPLYD_BASE_URL", "blog.example.org"),
            ("REPLYD_PROTOCOL", "pop3"),
            ("REPLYD_SECRET", "short"),
            ("REPLYD_API_TOKEN", "short"),
            ("REPLYD_LOG_FORMAT", "xml"),
            ("REPLYD_HTTP_PORT", "-1"),
            ("REPLYD_WEB_LIMITS", "logins=5/15m"),
            ("REPLYD_WEB_LIMITS", "login=0/m"),
            ("REPLYD_WEB_LIMITS", "client=5/0m"),
            ("REPLYD_WEB_LIMITS", "public=0/h"),
            ("REPLYD_EMBED_ORIGINS", "blog.example.org"),
            ("REPLYD_EMBED_ORIGINS", "https://blog.example.org/posts"),
            ("REPLYD_EMBED_ORIGINS", "*"),
            ("REPLYD_EMBED_ORIGINS", "https://*.example.org"),
            ("REPLYD_EMBED_ORIGINS", "https://blog.example.org:99999"),
        ],
    )
    def test_bad_value_names_the_variable(self, tmp_path: Path, name: str, value: str) -> None:
        """A bad setting fails at start with a message naming the variable."""
        with pytest.raises(ConfigError, match=name):
            load_settings({"REPLYD_VAR_DIR": str(tmp_path), name: value})

    def test_smtp_relay_url(self, tmp_path: Path) -> None:
        """An SMTP relay URL gives host, port, credentials and STARTTLS."""
        settings = load_settings(
            {
                "REPLYD_VAR_DIR": str(tmp_path),
                "REPLYD_OUTBOUND": "smtp://u%40x:p%3Aw@mail.example.org:587?starttls=true",
            }
        )
        out = settings.outbound
        assert (out.kind, out.host, out.port, out.username, out.password, out.starttls) == (
            "smtp",
            "mail.example.org",
            587,
            "u@x",
            "p:w",
            True,
        )

    def test_secret_generated_once_private_and_never_shown(self, tmp_path: Path) -> None:
        """Without REPLYD_SECRET, one is generated into var/secret (0600) and reused."""
        first = load_settings({"REPLYD_VAR_DIR": str(tmp_path)})
        second = load_settings({"REPLYD_VAR_DIR": str(tmp_path)})
        assert first.secret == second.secret
        assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
        assert first.secret not in repr(first)

    def test_relay_password_not_in_repr(self, tmp_path: Path) -> None:
        """The relay password never appears when settings are printed or logged."""
        settings = load_settings(
            {
                "REPLYD_VAR_DIR": str(tmp_path),
                "REPLYD_OUTBOUND": "smtp://user:hunter2secret@relay.example.org",
            }
        )
        assert "hunter2secret" not in repr(settings)

    def test_toml_file_and_environment_override(self, tmp_path: Path) -> None:
        """REPLYD_CONFIG's TOML file supplies settings; the environment wins over it."""
        config = tmp_path / "replyd.toml"
        config.write_text('domain = "file.example.org"\nsmtp_port = 2600\n')
        settings = load_settings(
            {
                "REPLYD_VAR_DIR": str(tmp_path),
                "REPLYD_CONFIG": str(config),
                "REPLYD_SMTP_PORT": "2700",
            }
        )
        assert settings.domain == "file.example.org"
        assert settings.smtp_port == 2700

    def test_unreadable_config_file(self, tmp_path: Path) -> None:
        """A missing config file is named in the error."""
        with pytest.raises(ConfigError, match="REPLYD_CONFIG"):
            load_settings(
                {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_CONFIG": str(tmp_path / "nope.toml")}
            )
