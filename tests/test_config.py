"""tierhouse.yml: the defaults without a file, what a file changes, and one line naming the
file, the key and the problem for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierhouse import settings
from tierhouse.ingest.sources import SOURCES
from tierhouse.orchestration.config import ConfigError, load_config, policy_names

SHIPPED = settings.PROJECT_ROOT / "tierhouse.yml"


def test_without_a_file_every_source_and_policy_is_on(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.yml")
    assert config.path is None
    assert config.enabled_sources == [*SOURCES, "shop"]
    assert config.policies == tuple(policy_names()) == ("abcd", "highend_flower", "service_levels")
    assert {name: s.landing_dir for name, s in config.sources.items() if name != "shop"} == {
        name: settings.DATA_DIR / source.subdir for name, source in SOURCES.items()
    }
    # imports arrive when a person hands them over: no freshness window unless configured
    assert config.freshness() == {**dict.fromkeys(SOURCES, 48), "imports": None, "shop": 48}


def test_the_shipped_file_is_the_defaults(tmp_path: Path) -> None:
    shipped, defaults = load_config(SHIPPED), load_config(tmp_path / "missing.yml")
    assert (shipped.sources, shipped.policies) == (defaults.sources, defaults.policies)


def test_a_file_enables_exactly_the_sources_it_lists(tmp_path: Path) -> None:
    path = tmp_path / "tierhouse.yml"
    path.write_text(
        "sources:\n  crm: {path: exports/crm, freshness_hours: 24}\n  imports: {freshness_hours: 720}\n"
        "  pos: {enabled: false}\n  shop: {connection: shop_db}\npolicies: [abcd]\n"
    )
    config = load_config(path)
    assert config.enabled_sources == ["crm", "imports", "shop"]
    assert config.sources["crm"].landing_dir == tmp_path / "exports" / "crm"
    assert config.sources["imports"].landing_dir == settings.DATA_DIR / "imports"
    assert config.freshness() == {"crm": 24, "imports": 720, "shop": 48}
    assert config.sources["shop"].connection == "shop_db"
    assert config.policies == ("abcd",)
    with pytest.raises(ConfigError, match=f"^source 'pos' is not enabled in {path}; enable it under `sources:` there$"):
        config.source("pos")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sources:\n  tills: {}\n",
            "sources.tills: unknown source; sources: pos, crm, payments, custom_orders, feedback, imports, shop",
        ),
        ("sources:\n  crm: {enabled: maybe}\n", "sources.crm.enabled: Input should be a valid boolean"),
        ("sources:\n  crm: {freshness_hours: 0}\n", "sources.crm.freshness_hours: Input should be greater than 0"),
        ("sources:\n  crm: {path: 3}\n", "sources.crm.path: Input should be a valid string"),
        (
            "sources:\n  shop: {path: x}\n",
            "sources.shop.path: unknown key; sources.shop takes enabled, connection, freshness_hours",
        ),
        (
            "sources:\n  shop: {connection: 'a b'}\n",
            "sources.shop.connection: String should match pattern '^[A-Za-z0-9_.-]{1,250}$'",
        ),
        (
            "sources:\n  crm: {enabled: false}\n",
            "sources: enables no source; list the ones this deployment has, or remove the key for all",
        ),
        ("sources: [crm]\n", "sources: expected a mapping of source name to its settings"),
        ("policies: []\n", "policies: List should have at least 1 item after validation, not 0"),
        ("policies: [abcd, abcd]\n", "policies[1]: 'abcd' is listed twice"),
        ("policies: [abcd, 3]\n", "policies[1]: Input should be a valid string"),
        ("source: {}\n", "source: unknown key; the file has `sources` and `policies`"),
        ("- crm\n", "(top level): expected a mapping with `sources` and/or `policies`"),
        ("sources: [\n", "not valid YAML at line 2: expected the node content, but found '<stream end>'"),
    ],
)
def test_each_mistake_is_one_line_naming_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tierhouse.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: {message}"


def test_an_unknown_policy_names_the_policies_there(tmp_path: Path) -> None:
    path = tmp_path / "tierhouse.yml"
    path.write_text("policies: [abcd, my_abcd]\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == (
        f"{path}: policies[1]: no policy 'my_abcd' under {settings.POLICIES_DIR}"
        " (policies there: abcd, highend_flower, service_levels)"
    )


def test_the_demo_refuses_a_configuration_without_its_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tierhouse.devtools.demo import DemoConfigError, check_demo_config

    monkeypatch.setenv("TIERHOUSE_CONFIG", str(tmp_path / "missing.yml"))
    check_demo_config()  # the defaults are what the demo needs
    path = tmp_path / "tierhouse.yml"
    path.write_text("sources:\n  crm: {}\n  imports: {path: elsewhere}\n  pos: {}\n  payments: {}\n  custom_orders: {}\n"
                    "  feedback: {}\n  shop: {}\npolicies: [abcd]\n")  # fmt: skip
    monkeypatch.setenv("TIERHOUSE_CONFIG", str(path))
    with pytest.raises(DemoConfigError, match="changes source imports, policy highend_flower, policy service_levels;"):
        check_demo_config()
