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
