"""Packaging and documentation: every package ships, every docs snippet runs."""
import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _packages_on_disk():
    found = {"nodekit"}
    for init in (ROOT / "nodekit").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if "__pycache__" not in rel.parts and rel.parts != ("nodekit",):
            found.add(".".join(rel.parts))
    for folder in ("examples", "validation", "benchmarks"):
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join(("nodekit",) + init.parent.relative_to(ROOT).parts))
    return found


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    missing, extra = _packages_on_disk() - listed, listed - _packages_on_disk()
    assert not missing, f"add to [options] packages in setup.cfg: {sorted(missing)}"
    assert not extra, f"setup.cfg lists packages that do not exist: {sorted(extra)}"
    mapped = dict(line.split(" = ") for line in
                  cfg["options"]["package_dir"].strip().splitlines())
    assert mapped == {f"nodekit.{n}": n for n in ("examples", "validation", "benchmarks")}
