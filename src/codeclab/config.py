"""Settings: one Pydantic object read from ``codeclab.toml`` and ``CODECLAB_*`` variables.

Precedence, highest first: explicit arguments (the command line), environment variables,
``codeclab.toml`` in the working directory (or the file named by ``CODECLAB_CONFIG``),
then the defaults below. Bad values fail early with the field's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SAMPLE_CLIP = Path(__file__).parent / "data" / "cars_320x240_30f.y4m"


def _config_file() -> Path:
    return Path(os.environ.get("CODECLAB_CONFIG", "codeclab.toml"))


DEFAULT_TEST_SET = "default"
NATURAL_TEST_SET = "natural"
BUILT_IN_TEST_SETS = (NATURAL_TEST_SET,)
"""Test sets shipped with the lab (:mod:`codeclab.evaluate.testsets` defines them); a
codeclab.toml cannot redefine them."""


class TestSet(BaseModel):
    """A named list of clips split into train and holdout (``[test_sets.NAME]``).

    Designers see scores of train clips only; the leaderboard and the target check use the
    holdout clips. An empty ``holdout`` means the train clips are the holdout too (records
    say so). ``sha256`` pins clip files (keys as written in the lists, values the sha256 of
    the file's bytes, as ``sha256sum`` prints it): a file that differs refuses the run.
    """

    __test__ = False  # not a pytest class, despite its name
    model_config = ConfigDict(extra="forbid")

    train: list[Path] = Field(min_length=1)
    holdout: list[Path] = Field(default_factory=list)
    sha256: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pins_name_clips(self) -> TestSet:
        listed = {str(p) for p in [*self.train, *self.holdout]}
        for key, digest in self.sha256.items():
            if key not in listed:
                raise ValueError(f"sha256 pin {key!r} names no clip of the set")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"sha256 pin for {key!r} is not 64 hex digits")
        return self


SECRET_FIELDS = ("link_secret", "admin_token")
"""Settings that are never recorded, printed or handed to a program."""

OPERATIONAL_FIELDS = (
    "home",
    "database_url",
    "allow_weak_isolation",
    "store_retry_cap_s",
    "store_give_up_s",
)
"""Settings of the run, not of the campaign: a resumed campaign takes this run's."""


class Settings(BaseSettings):
    """Everything a campaign or an evaluation needs to know, with honest defaults."""

    model_config = SettingsConfigDict(env_prefix="CODECLAB_", extra="forbid")

    home: Path = Field(Path("codeclab-data"), description="data directory: database, artifacts")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home")
    clips: list[Path] = Field(default_factory=lambda: [SAMPLE_CLIP])
    max_frames: int | None = Field(None, ge=1, description="use only the first N frames")
    raw_width: int | None = Field(None, ge=2, description="width of raw .yuv clips")
    raw_height: int | None = Field(None, ge=2, description="height of raw .yuv clips")
    raw_fps: float | None = Field(None, gt=0, description="frame rate of raw .yuv clips")
    qualities: list[int] = Field(default_factory=lambda: [20, 40, 60, 80])
    extend_ladder: bool = Field(
        True,
        description="add qualities (bisection) until each clip's rungs span the baselines' "
        "standard range (their PSNR-Y span at CRF 22..37), the headline BD-rate's range",
    )
    baselines: list[Literal["x264", "x265", "svtav1", "aom"]] = Field(
        default_factory=lambda: ["x264", "x265", "svtav1"]
    )
    target_kbps: float = Field(1000.0, gt=0)
    designer: Literal["evolve", "llm"] = "evolve"
    llm_provider: Literal["anthropic", "openai"] = "anthropic"
    llm_model: str | None = Field(None, description="required with designer = llm")
    llm_base_url: str | None = Field(None, description="an OpenAI-compatible server, etc.")
    llm_repairs: int = Field(3, ge=0, description="repair requests per proposal")
    llm_budget_usd: float | None = Field(None, gt=0, description="stop the campaign here")
    llm_timeout_s: float = Field(300.0, gt=0)
    llm_max_tokens: int = Field(16000, ge=256)
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="model -> (USD per M input, per M output tokens)"
    )
    iterations: int = Field(4, ge=1)
    workers: int = Field(1, ge=1, description="experiments evaluated in parallel")
    executor: Literal["local", "ray"] = Field(
        "local", description="where evaluations run: a local process pool, or a Ray cluster"
    )
    ray_address: str | None = Field(
        None, description="join this Ray cluster; default with executor = ray: start a local one"
    )
    seed: int = 0
    timeout_s: float | None = Field(None, gt=0, description="wall-clock limit per process")
    memory_mb: int | None = Field(None, ge=64, description="address-space limit per process")
    max_source_bytes: int = Field(256 * 1024, ge=1024)
    allow_weak_isolation: bool = Field(
        False,
        description="run programs without bubblewrap (weak isolation: a program that escapes "
        "the policy can read the host); its records stay off the leaderboard and target",
    )
    cascade_frames: int = Field(
        4,
        ge=0,
        description="evaluation cascade: screen each candidate on this many pictures of each "
        "train clip first (0: off; it runs on test sets with a holdout)",
    )
    cascade_margin: float = Field(
        0.0,
        ge=0,
        description="a screened candidate goes on within this many BD-rate points "
        "of its parent's screen figure (0: no worse than its parent there)",
    )
    holdout_margin: float | None = Field(
        0.5,
        ge=0,
        description="evaluation cascade: a candidate evaluated on the full train set goes on to "
        "the holdout clips within this many BD-rate points of the campaign's best train figure "
        "so far (None: every candidate does)",
    )
    test_sets: dict[str, TestSet] = Field(default_factory=dict)
    test_set: str | None = Field(
        None,
        description="natural (built in) or one of test_sets; default: clips, split by position",
    )
    vmaf: bool = Field(True, description="compute VMAF when an FFmpeg with libvmaf exists")
    artifacts_url: str | None = Field(
        None, description="s3://bucket/prefix for an S3-compatible store; default: home/artifacts"
    )
    s3_endpoint_url: str | None = Field(None, description="MinIO, R2, ...: the S3 endpoint")
    link_ttl: int = Field(7 * 24 * 3600, description="artifact link lifetime: seconds or '7d'")
    link_secret: SecretStr | None = Field(
        None, description="HMAC key of local links; default: one generated in home/link-secret"
    )
    admin_token: SecretStr | None = Field(
        None, description="bearer token for the dashboard's actions; none configured: refused"
    )
    store_retry_cap_s: float = Field(
        60.0,
        gt=0,
        description="while a store is unreachable, the longest pause between retries (the "
        "pause doubles from 1 s up to this)",
    )
    store_give_up_s: float = Field(
        1800.0,
        ge=0,
        description="how long a campaign waits for an unreachable store before it stops "
        "(its finished experiments kept for --resume); the default rides out a restart",
    )
    publish: Literal["all", "improved", "target"] = Field(
        "all",
        description="publish every verified experiment, those that beat the campaign's best "
        "BD-rate, or those that achieve the target",
    )

    @field_validator("qualities")
    @classmethod
    def _qualities_in_range(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one quality is needed")
        bad = [q for q in value if not 1 <= q <= 100]
        if bad:
            raise ValueError(f"qualities must be in 1..100, got {bad}")
        return sorted(set(value))

    @field_validator("link_ttl", mode="before")
    @classmethod
    def _ttl_seconds(cls, value: Any) -> int:
        from codeclab.store.links import parse_ttl

        return parse_ttl(value)

    @field_validator("artifacts_url")
    @classmethod
    def _artifacts_url_is_s3(cls, value: str | None) -> str | None:
        if value and not (value.startswith("s3://") and len(value) > 5):
            raise ValueError("artifacts_url must look like s3://bucket/prefix")
        return value or None

    @model_validator(mode="after")
    def _test_set_exists(self) -> Settings:
        taken = sorted(set(BUILT_IN_TEST_SETS) & set(self.test_sets))
        if taken:
            raise ValueError(f"test set {taken[0]!r} is built in: give yours another name")
        if self.test_set not in (None, DEFAULT_TEST_SET, *BUILT_IN_TEST_SETS, *self.test_sets):
            known = ", ".join(sorted(self.test_sets)) or "none"
            raise ValueError(
                f"unknown test set {self.test_set!r} (built in: {', '.join(BUILT_IN_TEST_SETS)}; "
                f"configured in [test_sets]: {known})"
            )
        return self

    def recorded(self) -> dict[str, Any]:
        """The settings as a campaign records them: no secrets (the link key, the admin
        token, a database password); a resumed campaign takes those from its own settings."""
        data = self.model_dump(mode="json", exclude=set(SECRET_FIELDS))
        if self.database_url:
            from sqlalchemy.engine import make_url

            data["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        return data

    def resumed(self, recorded: dict[str, Any], **given: Any) -> Settings:
        """The settings of a recorded campaign, continued here: its own choices, with this
        run's data directory, database, secrets, isolation, store waits and ``given``
        overrides. Settings the lab no longer has (``require_strong_isolation``, now the
        default) are dropped."""
        here = (*SECRET_FIELDS, *OPERATIONAL_FIELDS)
        mine = {name: getattr(self, name) for name in here}
        kept = {k: v for k, v in recorded.items() if k not in mine and k in type(self).model_fields}
        return Settings(**(kept | mine | given))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'codeclab.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def outbox_dir(self) -> Path:
        """Experiments kept while the experiment store is unreachable, written when it is back."""
        return self.home / "outbox"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return init_settings, env_settings, toml


def load_settings(**overrides: Any) -> Settings:
    """Settings with command-line overrides; ``None`` means 'not given on the command line'."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
