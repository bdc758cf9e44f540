"""What a built wheel needs: every subpackage listed in setup.cfg, and the models found by the package."""
import configparser
from pathlib import Path

import rtalign
from rtalign.models import MODEL_FILES, models_dir

ROOT = Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_subpackage_and_ships_the_models():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rtalign").rglob("__init__.py")}
    assert on_disk | {"rtalign.exported"} == listed
    assert cfg["options"]["package_dir"].split() == ["rtalign.exported", "=", "exported"]
    shipped = cfg["options.package_data"]["rtalign.exported"]
    assert all(Path(f).suffix in shipped for f in MODEL_FILES.values())


def test_models_are_found_without_the_environment_variable_and_it_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("RTALIGN_MODELS", raising=False)
    assert all((models_dir() / f).is_file() for f in MODEL_FILES.values())
    monkeypatch.setenv("RTALIGN_MODELS", str(tmp_path))
    assert models_dir() == tmp_path


def test_the_package_is_typed():
    assert (Path(rtalign.__file__).parent / "py.typed").is_file()
