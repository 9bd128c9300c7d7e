"""The wheel installs every package folder, and only import names that start with memsr."""
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _listed(cfg, key):
    return [line.strip() for line in cfg["options"][key].splitlines() if line.strip()]


def test_every_package_folder_is_installed_under_a_memsr_name():
    cfg = _config()
    folders = dict(line.split(" = ") for line in _listed(cfg, "package_dir"))
    to_name = {folder: name for name, folder in folders.items()}
    found = set()
    for top in ("memsr_deploy", *folders.values()):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join((to_name.get(parts[0], parts[0]), *parts[1:])))
    listed = set(_listed(cfg, "packages"))
    assert found == listed
    assert all(name.startswith("memsr") for name in listed)


def test_console_scripts_point_at_memsr_modules():
    cfg = _config()
    scripts = [line.split("=", 1)[1].strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines()
               if line.strip()]
    assert scripts and all(target.startswith("memsr") for target in scripts)


def test_help_describes_each_console_script_in_whole_sentences(capsys):
    """A wrapped first sentence once reached --help cut at its docstring's first line ("log each stage's wall time,
    its")."""
    import importlib

    from memsr_deploy.cli.args import summary

    assert summary("One sentence\nwrapped over lines.\n\nThe rest.") == "One sentence\nwrapped over lines."
    cfg = _config()
    for line in cfg["options.entry_points"]["console_scripts"].splitlines():
        if not line.strip():
            continue
        name, target = (part.strip() for part in line.split("="))
        module = importlib.import_module(target.split(":")[0])
        try:
            code = module.main(["--help"])
        except SystemExit as stop:
            code = stop.code
        assert code in (0, None), name
        description = capsys.readouterr().out.split("\n\n")[1].strip()
        assert description.endswith((".", ")")), f"{name}: {description}"
