"""Settings: defaults, validation messages that name the variable, and a secret kept safe."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest

from service.runtime import settings as settings_module
from service.runtime.settings import NAMES, ConfigError, load_settings, report_deprecations


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


class TestWorkerSetting:
    def test_old_name_is_read_as_worker_processes_with_a_warning(self, tmp_path: Path) -> None:
        """REPLYD_WORKERS still works, read as REPLYD_WORKER_PROCESSES, and says what to set."""
        settings = load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_WORKERS": "3"})
        assert settings.worker_processes == 3
        [note] = settings.deprecations
        assert "REPLYD_WORKERS is deprecated" in note
        assert "set REPLYD_WORKER_PROCESSES=3 instead" in note

    def test_new_name_wins_over_the_old_one(self, tmp_path: Path) -> None:
        """With both set, REPLYD_WORKER_PROCESSES counts and REPLYD_WORKERS is called ignored."""
        settings = load_settings(
            {
                "REPLYD_VAR_DIR": str(tmp_path),
                "REPLYD_WORKERS": "4",
                "REPLYD_WORKER_PROCESSES": "0",
            }
        )
        assert settings.worker_processes == 0
        [note] = settings.deprecations
        assert "ignored" in note and "remove REPLYD_WORKERS" in note

    def test_without_the_old_name_there_is_nothing_to_say(self, tmp_path: Path) -> None:
        """Only REPLYD_WORKER_PROCESSES: no deprecation note."""
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_WORKER_PROCESSES": "2"}
        assert load_settings(env).deprecations == ()

    def test_bad_old_value_names_the_old_variable(self, tmp_path: Path) -> None:
        """A malformed REPLYD_WORKERS is named as what it is."""
        with pytest.raises(ConfigError, match="REPLYD_WORKERS must be a whole number"):
            load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_WORKERS": "lots"})

    def test_warning_is_logged_once_per_process(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Reporting the same settings twice (CLI, then daemon) warns once."""
        settings = load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_WORKERS": "7"})
        with caplog.at_level(logging.WARNING, logger="service.runtime.settings"):
            report_deprecations(settings)
            report_deprecations(settings)
        warned = [r for r in caplog.records if "REPLYD_WORKERS" in r.getMessage()]
        assert len(warned) == 1


class TestBaseUrl:
    @pytest.mark.parametrize(
        ("host", "port", "expected"),
        [
            ("127.0.0.1", "8025", "http://127.0.0.1:8025"),
            ("127.0.0.1", "9031", "http://127.0.0.1:9031"),
            ("0.0.0.0", "8080", "http://localhost:8080"),
            ("::", "8080", "http://localhost:8080"),
            ("::1", "8081", "http://[::1]:8081"),
            ("blog.example.org", "80", "http://blog.example.org:80"),
        ],
    )
    def test_defaults_to_the_http_server_configured(
        self, tmp_path: Path, host: str, port: str, expected: str
    ) -> None:
        """Without REPLYD_BASE_URL, links point at REPLYD_HTTP_HOST and REPLYD_HTTP_PORT."""
        env = {"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_HTTP_HOST": host, "REPLYD_HTTP_PORT": port}
        assert load_settings(env).base_url == expected

    def test_given_base_url_wins(self, tmp_path: Path) -> None:
        """REPLYD_BASE_URL, when set, is used as given (without a trailing slash)."""
        env = {
            "REPLYD_VAR_DIR": str(tmp_path),
            "REPLYD_HTTP_PORT": "9031",
            "REPLYD_BASE_URL": "https://comments.example.org/",
        }
        assert load_settings(env).base_url == "https://comments.example.org"


class TestConfigFileKeys:
    def test_typo_names_the_key_and_the_nearest_setting(self, tmp_path: Path) -> None:
        """A misspelt key stops replyd with its name and the setting it was probably meant as."""
        config = tmp_path / "replyd.toml"
        config.write_text('domain = "file.example.org"\nsmtp_prot = 2600\n')
        with pytest.raises(ConfigError) as raised:
            load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_CONFIG": str(config)})
        message = str(raised.value)
        assert "'smtp_prot'" in message
        assert "did you mean 'smtp_port'?" in message

    def test_unknown_key_without_a_near_one(self, tmp_path: Path) -> None:
        """A key like no setting is named, with how keys are spelt and no guess."""
        config = tmp_path / "replyd.toml"
        config.write_text("colour = 3\n")
        with pytest.raises(ConfigError, match="'colour', which is no replyd setting") as raised:
            load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_CONFIG": str(config)})
        assert "did you mean" not in str(raised.value)

    def test_every_setting_is_a_valid_key(self, tmp_path: Path) -> None:
        """Each REPLYD_* name settings.py reads is accepted in the file (in either case)."""
        source = Path(settings_module.__file__).read_text()
        read = set(re.findall(r'"(REPLYD_[A-Z_]+)"', source)) - {"REPLYD_CONFIG"}
        assert read == set(NAMES)
        config = tmp_path / "replyd.toml"
        config.write_text('SITE_NAME = "From the file"\nlanguage = "de"\n')
        settings = load_settings({"REPLYD_VAR_DIR": str(tmp_path), "REPLYD_CONFIG": str(config)})
        assert (settings.site_name, settings.language) == ("From the file", "de")
