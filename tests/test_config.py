from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from codeclab.config import SAMPLE_CLIP, load_settings


def test_defaults_use_sample_and_local_home(home):
    settings = load_settings()
    assert settings.clips == [SAMPLE_CLIP] and SAMPLE_CLIP.is_file()
    assert settings.home == home
    assert settings.db_url == f"sqlite:///{(home / 'codeclab.db').resolve()}"
    assert settings.qualities == [20, 40, 60, 80]


def test_toml_then_environment_then_arguments(home, monkeypatch):
    Path("codeclab.toml").write_text("iterations = 7\nqualities = [30, 10]\ntarget_kbps = 500\n")
    assert load_settings().iterations == 7
    assert load_settings().qualities == [10, 30]  # sorted, as the ladder is drawn
    monkeypatch.setenv("CODECLAB_ITERATIONS", "9")
    assert load_settings().iterations == 9
    assert load_settings(iterations=3, seed=None).iterations == 3  # None: not given


def test_config_file_can_be_named(home, monkeypatch, tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text("seed = 42\n")
    monkeypatch.setenv("CODECLAB_CONFIG", str(other))
    assert load_settings().seed == 42


@pytest.mark.parametrize(
    "text, field",
    [
        ("qualities = [0, 50]\n", "qualities"),
        ("iterations = 0\n", "iterations"),
        ("baselines = ['x266']\n", "baselines"),
        ("no_such_setting = 1\n", "no_such_setting"),
    ],
)
def test_bad_configuration_names_the_field(home, text, field):
    Path("codeclab.toml").write_text(text)
    with pytest.raises(ValidationError, match=field):
        load_settings()


def test_campaigns_record_no_secrets_and_resume_with_the_current_ones(home, monkeypatch):
    monkeypatch.setenv("CODECLAB_LINK_SECRET", "link-key-123")
    monkeypatch.setenv("CODECLAB_ADMIN_TOKEN", "admin-token-456")
    url = "postgresql+psycopg://lab:hunter2@db.example:5432/codeclab"
    recorded = load_settings(iterations=6, seed=5, database_url=url).recorded()
    text = str(recorded)
    assert "link-key-123" not in text and "admin-token-456" not in text and "hunter2" not in text
    assert "link_secret" not in recorded and "admin_token" not in recorded
    assert recorded["database_url"] == "postgresql+psycopg://lab:***@db.example:5432/codeclab"
    monkeypatch.setenv("CODECLAB_LINK_SECRET", "new-link-key")
    here = load_settings(database_url=url)
    resumed = here.resumed(recorded, executor="ray")
    assert (resumed.iterations, resumed.seed, resumed.executor) == (6, 5, "ray")
    assert resumed.link_secret.get_secret_value() == "new-link-key"
    assert resumed.admin_token.get_secret_value() == "admin-token-456"
    assert resumed.database_url == url and resumed.home == here.home
    # campaigns recorded before secrets were left out held masked values: never used
    old = {**recorded, "link_secret": "**********", "admin_token": "**********"}
    assert here.resumed(old).link_secret.get_secret_value() == "new-link-key"
