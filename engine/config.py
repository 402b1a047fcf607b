"""Configuration: default paths, the optional TOML file, and typed settings.

The file (``--config FILE``, ``MEMTUI_CONFIG``, or config.toml under
platformdirs' user config dir) may hold ``[engine]``, ``[llm]`` and one
``[jobs.NAME]`` table per job. A job table's ``enabled``, ``schedule``,
``timezone`` and ``jitter`` seed the job's definition on first start (after
that the database wins, so edits from the dashboard or CLI survive a restart);
every other key is a parameter of the job's typed config and applies on every
run. Anything malformed is a ``ConfigError`` whose message names the file and
the key.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from memtui.models.db import is_url, shown

APP = "memtui"
DEFINITION_KEYS = ("enabled", "schedule", "timezone", "jitter")
ENGINE_KEYS = ("timeout_s",)  # per-job engine settings, read live like the job's parameters


class ConfigError(ValueError):
    """A config value that cannot be used; the message is one line naming the key."""


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "memtui.db"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def resolve_db_path(cli_value: str | None) -> Path | str:
    """Where the store is: --db, else $MEMTUI_DB, else the default file; an empty value is refused,
    never read as "unset". A URL (``postgresql://…``, ``sqlite:///…``) is returned as it was given,
    for Store.open to read: a Path would fold its "//" and expanding "~" has no meaning in it."""
    value = cli_value if cli_value is not None else os.environ.get("MEMTUI_DB")
    if value is None:
        return default_db_path()
    if not value.strip():
        raise ConfigError("empty database path (give --db PATH or URL, or unset MEMTUI_DB for the default)")
    if is_url(value):
        return value
    return _expand(Path(value), ConfigError)


def _expand(path: Path, error: type[Exception]) -> Path:
    try:
        return path.expanduser()
    except RuntimeError:  # ~someone who does not exist
        raise error(f"{shown(path)}: cannot expand '~' (no such user)") from None



def setting(default, *, min=None, max=None, doc: str = ""):
    """A typed config field with an allowed range, checked by ``build``."""
    return field(default=default, metadata={"min": min, "max": max, "doc": doc})


def build(cls, data: Mapping[str, Any], where: str):
    """Make dataclass ``cls`` from ``data``, checking keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        values[key] = _check_value(f, value, f"{where} {key}")
    try:
        return cls(**values)
    except ConfigError as exc:  # a check across fields, in __post_init__
        raise ConfigError(f"{where} {exc}") from None


def _check_value(f: dataclasses.Field, value, where: str):
    expected = f.type if isinstance(f.type, type) else _type_from_name(str(f.type))
    optional = isinstance(f.type, str) and "None" in f.type
    if value is None and optional:
        return None
    if expected is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a table")
        return dict(value)
    if expected is float:
        try:
            finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        except OverflowError:  # an integer beyond float range
            finite = False
        if not finite:
            raise ConfigError(f"{where}: must be a finite number (got {_short(value)})")
        value = float(value)
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number (got {_short(value)})")
    elif expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false (got {value!r})")
    elif expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be text (got {value!r})")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        raise ConfigError(f"{where}: must be at least {low} (got {_short(value)})")
    if high is not None and value > high:
        raise ConfigError(f"{where}: must be at most {high} (got {_short(value)})")
    return value


def _short(value) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge integer"
    return text if len(text) <= 60 else text[:57] + "..."


def _type_from_name(name: str):
    if name.startswith("dict"):
        return dict
    for candidate in (bool, int, float, str):
        if candidate.__name__ in name:
            return candidate
    return object


@dataclass(frozen=True)
class EngineSettings:
    misfire_grace_s: float = setting(60.0, min=1.0, max=86400.0, doc="a run later than this is recorded as missed")
    backoff_base_s: float = setting(30.0, min=1.0, max=86400.0, doc="delay after the first failure; doubles per failure")
    backoff_cap_s: float = setting(3600.0, min=1.0, max=7 * 86400.0, doc="longest failure backoff")
    lease_ttl_s: float = setting(60.0, min=5.0, max=86400.0, doc="how long a dead engine's lease blocks a job")
    poll_interval_s: float = setting(1.0, min=0.1, max=60.0, doc="how often changes from other processes are read")
    stop_timeout_s: float = setting(30.0, min=0.0, max=3600.0, doc="how long stop waits for running jobs")
    job_timeout_s: float = setting(3600.0, min=1.0, max=7 * 86400.0, doc="a run longer than this is failed")


@dataclass(frozen=True)
class LLMSettings:
    model: str | None = None
    api_base: str | None = None
    # litellm's embedding() model (e.g. "text-embedding-3-small"): the dedupe job then also confirms
    # near-duplicates by cosine similarity. $MEMTUI_EMBEDDING_MODEL overrides it.
    embedding_model: str | None = None
    timeout_s: float = setting(60.0, min=0.01, max=3600.0, doc="per call")
    retries: int = setting(2, min=0, max=10, doc="extra tries after a rate limit, timeout or connection error")
    retry_backoff_s: float = setting(2.0, min=0.0, max=600.0, doc="first retry delay; doubles per retry")
    token_budget: int = setting(50_000, min=0, max=10_000_000, doc="tokens one run may spend; 0 = no limit")
    options: dict[str, Any] = field(default_factory=dict)  # extra litellm.completion arguments
    embedding_options: dict[str, Any] = field(default_factory=dict)  # extra litellm.embedding arguments

    def __post_init__(self):
        for name, options in (("options", self.options), ("embedding_options", self.embedding_options)):
            if options and any(k in options for k in ("api_key", "model", "messages", "input")):
                raise ConfigError(f"{name}: api_key, model, messages and input cannot be set here "
                                  "(keys come from the environment)")


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    engine: EngineSettings = EngineSettings()
    llm: LLMSettings = LLMSettings()
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def job_params(self, name: str) -> dict[str, Any]:
        """The job's own parameters from the file (definition keys left out)."""
        table = self.jobs.get(name, {})
        return {k: v for k, v in table.items() if k not in DEFINITION_KEYS + ENGINE_KEYS}

    def job_timeout_s(self, name: str) -> float:
        """``[jobs.NAME] timeout_s``, else ``[engine] job_timeout_s``."""
        return float(self.jobs.get(name, {}).get("timeout_s", self.engine.job_timeout_s))

    def job_definition(self, name: str) -> dict[str, Any]:
        table = self.jobs.get(name, {})
        return {k: table[k] for k in DEFINITION_KEYS if k in table}


def load_config(path: str | os.PathLike | None = None, *, explicit: bool | None = None) -> Config:
    """Read the config file; a missing default file is fine, a missing named one is not."""
    if path is None:
        env = os.environ.get("MEMTUI_CONFIG")
        path, explicit = (Path(env), True) if env else (default_config_path(), False)
    else:
        path = Path(path)
        explicit = True if explicit is None else explicit
    path = _expand(path, ConfigError)
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:  # name too long, NUL byte
        raise ConfigError(f"{shown(path)}: unusable config path ({getattr(exc, 'strerror', None) or exc})") from None
    if not exists:
        if explicit:
            raise ConfigError(f"{shown(path)}: config file not found")
        return _with_env(Config())
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown(path)}: not valid TOML: {' '.join(str(exc).split())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown(path)}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise ConfigError(f"{shown(path)}: not valid TOML: {' '.join(str(exc).split())[:200]}") from None
    config = parse_config(data, path)
    return _with_env(dataclasses.replace(config, warnings=_exposure_warnings(path, text)))


def _exposure_warnings(path: Path, text: str) -> tuple[str, ...]:
    """A config that holds something secret-looking should be readable by its owner only."""
    from memtui.engine.redact import KEY_SHAPES, SECRET_NAME

    try:
        mode = path.stat().st_mode
    except OSError:
        return ()
    secretish = KEY_SHAPES.search(text) or any(
        SECRET_NAME.search(line.split("=", 1)[0]) for line in text.splitlines() if "=" in line)
    if mode & 0o077 and secretish:
        return (f"{shown(path)} is readable by other users and seems to hold a secret; "
                f"run: chmod 600 {shown(path)} (better: keep API keys in the environment)",)
    return ()


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    from memtui.engine.jobs import DEFAULT_JOBS, config_for
    from memtui.engine.schedule import Schedule, ScheduleError

    where = shown(path) if path else "config"
    unknown = set(data) - {"engine", "llm", "jobs"}
    if unknown:
        raise ConfigError(f"{where}: unknown table {sorted(unknown)[0]!r} (known: engine, jobs, llm)")
    engine = build(EngineSettings, data.get("engine", {}), f"{where}: [engine]")
    llm = build(LLMSettings, data.get("llm", {}), f"{where}: [llm]")
    jobs = data.get("jobs", {})
    if not isinstance(jobs, Mapping):
        raise ConfigError(f"{where}: [jobs] must be a table of job tables")
    for name, table in jobs.items():
        section = f"{where}: [jobs.{name}]"
        if name not in DEFAULT_JOBS:
            raise ConfigError(f"{section}: unknown job (known: {', '.join(DEFAULT_JOBS)})")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{section}: must be a table")
        if "enabled" in table and not isinstance(table["enabled"], bool):
            raise ConfigError(f"{section} enabled: must be true or false")
        defaults = DEFAULT_JOBS[name]
        try:
            Schedule.parse(table.get("schedule", defaults.schedule), table.get("timezone"),
                           table.get("jitter", defaults.jitter_s))
        except ScheduleError as exc:
            raise ConfigError(f"{section}: {exc}") from None
        if "timeout_s" in table:
            same_rule = next(f for f in dataclasses.fields(EngineSettings) if f.name == "job_timeout_s")
            _check_value(same_rule, table["timeout_s"], f"{section} timeout_s")
        params = {k: v for k, v in table.items() if k not in DEFINITION_KEYS + ENGINE_KEYS}
        config_for(name, params, section)  # validates; raises ConfigError
    return Config(path=path, engine=engine, llm=llm, jobs=dict(jobs))


def _with_env(config: Config) -> Config:
    model = os.environ.get("MEMTUI_MODEL")
    if model:
        config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, model=model))
    embedding = os.environ.get("MEMTUI_EMBEDDING_MODEL")
    if embedding:
        config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, embedding_model=embedding))
    return config
