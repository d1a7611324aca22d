"""What hassfest and HACS check, and what Home Assistant needs to show every string and icon.

Home Assistant loads only `translations/en.json` for a custom integration and shows a raw key
(or no name) for anything missing, so every translation key an entity, flow, exception or
repair issue uses must be there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from PIL import Image

from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, example, unique_id

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "sbms"
HACS_KEYS = {
    "name",
    "homeassistant",
    "render_readme",
    "country",
    "filename",
    "zip_release",
    "content_in_root",
    "hacs",
    "hide_default_branch",
    "persistent_directory",
}


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def _strings() -> dict[str, Any]:
    return _json(COMPONENT / "translations" / "en.json")


def test_manifest_has_what_hassfest_requires_in_its_order() -> None:
    manifest = _json(COMPONENT / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == "sbms"
    assert manifest["dependencies"] == ["mqtt"]
    assert manifest["iot_class"] == "local_push"
    assert manifest["mqtt"] == ["sbms/+/announce"]
    assert manifest["codeowners"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for link in ("documentation", "issue_tracker"):
        assert manifest[link].startswith("https://")


def test_hacs_json_uses_only_keys_hacs_knows() -> None:
    hacs = _json(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS
    assert hacs["homeassistant"] == "2025.4.0"


def test_brand_icon_is_a_square_png() -> None:
    with Image.open(COMPONENT / "brand" / "icon.png") as icon:
        assert icon.format == "PNG"
        assert icon.size == (256, 256)


def test_translations_have_no_references_and_no_empty_strings() -> None:
    """A custom integration's en.json is used as is: a `[%key:...%]` would show verbatim."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        else:
            assert isinstance(node, str), path
            assert node.strip(), f"{path} is empty"
            assert "[%key:" not in node, path

    walk(_strings(), "en")


def _source() -> str:
    return "\n".join(path.read_text("utf-8") for path in sorted(COMPONENT.glob("*.py")))


def test_every_exception_and_repair_issue_is_translated() -> None:
    source = _source()
    strings = _strings()
    exceptions = set(re.findall(r'translation_domain=DOMAIN,\s*translation_key="(\w+)"', source))
    assert exceptions, "no translated exceptions found: the pattern is stale"
    assert exceptions <= set(strings["exceptions"])
    issues = set(re.findall(r'^ISSUE_\w+(?:: Final)? = "(\w+)"', source, re.MULTILINE))
    assert issues == set(strings["issues"])


def test_every_flow_error_and_abort_is_translated() -> None:
    source = "".join(
        (COMPONENT / name).read_text("utf-8") for name in ("config_flow.py", "discovery.py")
    )
    used = set(re.findall(r'(?:reason=|AnnounceError\(|\] = |_ERROR = |"base": )"(\w+)"', source))
    assert used, "no flow errors found: the pattern is stale"
    strings = _strings()
    known = (
        set(strings["config"]["error"])
        | set(strings["config"]["abort"])
        | set(strings["options"].get("error", {}))
        | set(strings["options"].get("abort", {}))
        | set(strings["config_subentries"]["load"]["error"])
        | set(strings["config_subentries"]["load"]["abort"])
        | set(strings["config_subentries"]["surplus_load"]["error"])
        | set(strings["config_subentries"]["surplus_load"]["abort"])
    )
    assert used <= known, used - known


async def test_every_entity_has_a_translated_name_and_an_icon(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The fullest box (PV shunt, every temperature, a dual-PV output) makes every entity."""
    agent.announce["outputs"][2] = {"name": "extio5", "type": 6, "type_name": "dual_pv"}
    agent.config["outputs"][2]["type"] = 6
    agent.state["dual_pv_level"] = 1
    agent.state["temperatures"]["external2"] = 18.0  # xT2's entity comes with its reading
    # A PV diversion and a tank thermometer (issue 19): their entities come with the state.
    agent.state["diversion"] = example("state", 1)["diversion"]
    agent.state["temperatures"]["heater_tank"] = 55.0
    await agent.publish_all()
    # The per-load shedding sensor exists only for a configured optional load.
    load = {"entity_id": "switch.heater", "priority": 1, "shed_below": 30, "restore_above": 50}
    entry = await setup_box(
        agent,
        subentries_data=[
            {
                "subentry_type": "load",
                "title": "Heater",
                "unique_id": "switch.heater",
                "data": {**load, "min_off_time": 0, "min_on_time": 0},
            },
            {  # and the per-load surplus sensor for a surplus load
                "subentry_type": "surplus_load",
                "title": "Pool pump",
                "unique_id": "switch.pool_pump",
                "data": {
                    "entity_id": "switch.pool_pump",
                    "priority": 5,
                    "min_soc": 90,
                    "max_discharge_power": 100,
                    "discharge_time": 60,
                    "min_off_time": 0,
                    "min_on_time": 0,
                },
            },
        ],
    )
    await wait_for(
        hass,
        lambda: (
            er.async_get(hass).async_get_entity_id("sensor", "sbms", unique_id("diverted_energy"))
            is not None
            and er.async_get(hass).async_get_entity_id(
                "sensor", "sbms", unique_id("temperature_heater_tank")
            )
            is not None
            and er.async_get(hass).async_get_entity_id(
                "binary_sensor", "sbms", unique_id("surplus_available")
            )
            is not None
        ),
    )
    strings = _strings()["entity"]
    icons = _json(COMPONENT / "icons.json")["entity"]
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    platforms = {entity.domain for entity in entities}
    assert {"sensor", "binary_sensor", "number", "select", "switch", "button", "event"} <= (
        platforms
    )
    for entity in entities:
        key = entity.translation_key
        assert key is not None, entity.entity_id
        assert strings[entity.domain][key]["name"], entity.entity_id
        has_icon = key in icons.get(entity.domain, {})
        assert has_icon or entity.original_device_class is not None, (
            f"{entity.entity_id} has neither an icon nor a device class"
        )
    used = {(entity.domain, entity.translation_key) for entity in entities}
    for platform, keys in strings.items():
        for key in keys:
            assert (platform, key) in used, f"entity.{platform}.{key} is never used"
