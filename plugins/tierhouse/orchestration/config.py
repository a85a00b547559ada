"""The deployment configuration: which sources a deployment has (and where each one's files or
database are) and which policies it grades, in one file, ``tierhouse.yml`` at the project root
(``TIERHOUSE_CONFIG`` names another). The DAGs read it when they are parsed, the load tasks, the
raw-data gate and ``tierhouse import`` when they run, and the demo before it starts.

Without the file every source is enabled where the landing area keeps it and every policy under
``policies/`` is graded: what the demo and the sample data need. A file that lists ``sources``
enables exactly those (each unless ``enabled: false``); one that lists ``policies`` grades
exactly those. Reading it touches no database and no network, only this file and the folder
names under ``policies/``, so DAG files can read it at parse time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.ingest.sources import SOURCES

#: The online shop's database: read on a watermark, not from files (tierhouse.ingest.loaders).
SHOP = "shop"
SOURCE_NAMES = (*SOURCES, SHOP)
#: A source with no new data for longer than this fails the raw-data gate (its freshness).
DEFAULT_FRESHNESS_HOURS = 48
#: Sources whose freshness is not checked unless the file says so: order-history imports arrive
#: when a person hands them over, not on a schedule.
UNSCHEDULED_SOURCES = frozenset({"imports"})


class ConfigError(TierhouseError, ValueError):
    """The deployment configuration file is unreadable or invalid; the message names the file,
    the key and the problem."""


@dataclass(frozen=True)
class SourceSettings:
    name: str
    enabled: bool
    #: Where a file source's exports land (tierhouse import copies files there); None for the shop.
    landing_dir: Path | None
    #: The Airflow connection of the shop database; None: the warehouse's own ``shop`` schema.
    connection: str | None
    #: The raw-data gate's freshness window; None: freshness is not checked.
    freshness_hours: int | None


@dataclass(frozen=True)
class DeploymentConfig:
    #: The file read, or None when there is none (the defaults).
    path: Path | None
    sources: dict[str, SourceSettings]
    policies: tuple[str, ...]

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "the default configuration (no tierhouse.yml)"

    @property
    def enabled_sources(self) -> list[str]:
        return [name for name, source in self.sources.items() if source.enabled]

    @property
    def enabled_file_sources(self) -> list[str]:
        return [name for name in self.enabled_sources if name != SHOP]

    def source(self, name: str) -> SourceSettings:
        """An enabled source's settings; one clear line for an unknown or disabled one."""
        if name not in self.sources:
            raise ConfigError(f"unknown source {name!r}; sources: {', '.join(SOURCE_NAMES)}")
        if not self.sources[name].enabled:
            raise ConfigError(f"source {name!r} is not enabled in {self.label}; enable it under `sources:` there")
        return self.sources[name]

    def freshness(self) -> dict[str, int | None]:
        """The raw-data gate's view: each enabled source with its freshness window."""
        return {name: self.sources[name].freshness_hours for name in self.enabled_sources}


def config_path() -> Path:
    return Path(os.environ.get("TIERHOUSE_CONFIG", settings.PROJECT_ROOT / "tierhouse.yml"))


def policy_names(policies_dir: Path | None = None) -> list[str]:
    """The policies under ``policies/``: each folder holding a ``v<n>.yml`` (the files themselves
    are parsed and validated by tierhouse.grading.policy when they are loaded)."""
    root = policies_dir or settings.POLICIES_DIR
    return sorted({path.parent.name for path in root.glob("*/v*.y*ml")})


def load_config(path: Path | None = None) -> DeploymentConfig:
    """The deployment configuration at ``path`` (default :func:`config_path`); the defaults when
    the file does not exist."""
    path = path or config_path()
    if not path.exists():
        return _resolve(None, None, None)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from exc
    if document is None:
        document = {}
    return _resolve(path, *_validate(path, document))


def _validate(path: Path, document: object) -> tuple[dict[str, dict[str, Any]] | None, list[str] | None]:
    """The file's sources and policies (None where it does not list them), checked with pydantic."""
    from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StrictBool, ValidationError

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class FileSource(Strict):
        enabled: StrictBool = True
        path: str | None = Field(default=None, min_length=1)
        freshness_hours: PositiveInt | None = DEFAULT_FRESHNESS_HOURS

    class ShopSource(Strict):
        enabled: StrictBool = True
        connection: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$")
        freshness_hours: PositiveInt | None = DEFAULT_FRESHNESS_HOURS

    class Policies(Strict):
        policies: list[str] | None = Field(default=None, min_length=1)

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    def check(model: type[BaseModel], value: object, prefix: str) -> BaseModel:
        try:
            return model.model_validate(value if value is not None else {})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
            key = f"{prefix}{key}".strip(".") or "(top level)"
            if error["type"] == "extra_forbidden":
                raise fail(key, f"unknown key; {prefix or 'the file'} takes {', '.join(model.model_fields)}") from None
            raise fail(key, error["msg"]) from None

    if not isinstance(document, dict):
        raise fail("(top level)", "expected a mapping with `sources` and/or `policies`")
    unknown = sorted(set(document) - {"sources", "policies"}, key=str)
    if unknown:
        raise fail(str(unknown[0]), "unknown key; the file has `sources` and `policies`")
    sources = document.get("sources")
    if "sources" in document and not isinstance(sources, dict):
        raise fail("sources", "expected a mapping of source name to its settings")
    checked_sources: dict[str, Any] = {}
    for name, entry in (sources or {}).items():
        if name not in SOURCE_NAMES:
            raise fail(f"sources.{name}", f"unknown source; sources: {', '.join(SOURCE_NAMES)}")
        model = ShopSource if name == SHOP else FileSource
        checked = check(model, entry, f"sources.{name}")
        given = checked.model_fields_set
        if name in UNSCHEDULED_SOURCES and "freshness_hours" not in given:
            checked = checked.model_copy(update={"freshness_hours": None})
        checked_sources[name] = checked.model_dump()
    if "sources" in document and not any(entry["enabled"] for entry in checked_sources.values()):
        raise fail("sources", "enables no source; list the ones this deployment has, or remove the key for all")
    policies = check(Policies, {"policies": document.get("policies")}, "").policies  # type: ignore[attr-defined]
    if policies is not None:
        known = policy_names()
        for index, name in enumerate(policies):
            if name not in known:
                raise fail(
                    f"policies[{index}]",
                    f"no policy {name!r} under {settings.POLICIES_DIR} (policies there: {', '.join(known) or 'none'})",
                )
            if policies.index(name) != index:
                raise fail(f"policies[{index}]", f"{name!r} is listed twice")
    return (checked_sources if "sources" in document else None), policies


def _resolve(path: Path | None, sources: dict[str, dict[str, Any]] | None, policies: list[str] | None) -> DeploymentConfig:
    """Settings for every source (None: all enabled, as the defaults) and the graded policies."""
    resolved = {}
    for name in SOURCE_NAMES:
        entry = {} if sources is None else sources.get(name)
        if entry is None:
            resolved[name] = SourceSettings(name, False, None, None, None)
            continue
        hours = entry.get("freshness_hours", None if name in UNSCHEDULED_SOURCES else DEFAULT_FRESHNESS_HOURS)
        landing = None
        if name != SHOP:
            given = entry.get("path")
            base = path.parent if path is not None else settings.PROJECT_ROOT
            landing = (base / given).resolve() if given else settings.DATA_DIR / SOURCES[name].subdir
        resolved[name] = SourceSettings(name, entry.get("enabled", True), landing, entry.get("connection"), hours)
    return DeploymentConfig(path, resolved, tuple(policies or policy_names()))
