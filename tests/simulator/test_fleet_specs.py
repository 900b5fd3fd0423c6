"""Who is simulated: demo households, product mixes, provisioning files, the import boundary."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

import simulator
from simulator.errors import ProvisioningError, SimulatorError
from simulator.households import demo_devices
from simulator.mix import mixed_fleet, parse_mix
from simulator.personas import PERSONAS
from simulator.provisioning import load_provisioning


def test_demo_devices_are_households_with_owners_and_stable_identities() -> None:
    devices = demo_devices(36, seed=4)
    assert len(devices) == 36 and demo_devices(36, seed=4) == devices
    assert len({d.uid for d in devices}) == 36 and len({d.serial for d in devices}) == 36
    households = Counter(d.owner.key for d in devices)
    assert all(2 <= n <= 4 for n in list(households.values())[:-1])
    for device in devices:
        same_home = [d for d in devices if d.owner.key == device.owner.key]
        assert {(d.latitude, d.longitude) for d in same_home} == {
            (device.latitude, device.longitude)
        }
        assert device.owner.persona in PERSONAS and device.owner.email.endswith("@example.com")
        assert device.spec.model == device.model_id and device.spec.uid == device.uid
    assert set(Counter(d.model_id for d in devices)) == {
        "ev",
        "refrigerator",
        "washing_machine",
        "air_conditioner",
    }
    assert any(d.owner.language == "ja" for d in devices)
    assert any(d.nickname == "台所の冷蔵庫" for d in devices)


def test_mix_gives_exact_counts_in_proportion() -> None:
    specs = mixed_fleet(10, parse_mix("ev=1,refrigerator=3"), seed=1)
    counts = Counter(s.model for s in specs)
    assert counts == {"refrigerator": 8, "ev": 2} or counts == {"refrigerator": 7, "ev": 3}
    assert len({s.uid for s in specs}) == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("toaster=1", "unknown product model 'toaster'"),
        ("ev=lots", "weight for ev is not a number"),
        ("ev=0", "at least one product model"),
    ],
)
def test_bad_mix_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        parse_mix(text)


def test_provisioning_from_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("uid,password,model,persona\ncar-1,pw1,ev,retiree\n")
    loaded = load_provisioning(csv_file)
    assert loaded.password("car-1") == "pw1"
    assert [(d.uid, d.model, d.persona) for d in loaded.devices] == [("car-1", "ev", "retiree")]
    json_file = tmp_path / "p.json"
    json_file.write_text(json.dumps({"fridge-1": "pw2"}))
    assert load_provisioning(json_file).password("fridge-1") == "pw2"
    with pytest.raises(ProvisioningError, match="no credential for device 'other'"):
        loaded.password("other")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", "[1, 2]", "JSON must be"),
        ("b.json", "{oops", "not valid JSON"),
        ("c.csv", "uid,password\ncar-1,\n", "entry 1: needs a uid and a password"),
        ("d.csv", "uid,password,model\ncar 1,pw,ev\n", "entry 1"),
    ],
)
def test_bad_provisioning_file_is_a_clear_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ProvisioningError, match=message):
        load_provisioning(path)


PLATFORM_PACKAGES = {"app", "store", "ingest", "devices", "rules", "notify", "api", "dashboard"}
ALLOWED = {"devices.protocol", "devices.catalog"}


def test_simulator_speaks_only_the_protocol_and_only_scoring_reads_platform_output() -> None:
    root = Path(simulator.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] in PLATFORM_PACKAGES:
                    assert name in ALLOWED, f"{path.name} imports {name}"
                if name.split(".")[0] == "psycopg":
                    assert path.name == "scoring.py", f"{path.name} reads the database"
