"""Running a recipe stage by stage: runs/ under the root, finished stages skipped on a rerun, an interrupted one
rerun, each stage's minutes logged and turned into the recipe's comments."""
import json
import shlex

from memsr_bench import run_recipe
from memsr_bench.run_recipe import main, recipe_lines

# stage 1 writes runs/a/out.txt; stage 2 fails once (while runs/fail_once exists it removes it and exits 3),
# then appends to runs/a/out.txt, so the file tells which stages ran how often
WRITE = "python -c " + shlex.quote("import pathlib,sys; p=pathlib.Path(sys.argv[1]); p.mkdir(parents=True, "
                                   "exist_ok=True); (p/'out.txt').write_text('one\\n')") + " runs/a --threads 1"
FLAKY = "python -c " + shlex.quote("import pathlib,sys; f=pathlib.Path(sys.argv[1]); o=pathlib.Path(sys.argv[2]); "
                                   "f.exists() and (f.unlink(), sys.exit(3)); "
                                   "o.write_text(o.read_text()+'two\\n')") + " runs/fail_once runs/a/out.txt"


def _recipe(tmp_path, *commands, name="recipe.txt"):
    p = tmp_path / name
    p.write_text("# a comment line\n\n" + "\n".join(f"{c}  # trailing comment" for c in commands) + "\n")
    return p


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_stages_run_in_order_and_a_rerun_skips_them(tmp_path, capsys):
    root = tmp_path / "root"
    recipe = _recipe(tmp_path, WRITE, FLAKY)
    rc, err = _run(capsys, recipe, "--root", root)
    assert rc == 0, err
    assert (root / "a" / "out.txt").read_text() == "one\ntwo\n"
    log = json.loads((root / "stages.json").read_text())
    assert [s["status"] for s in log["stages"]] == ["done", "done"]
    assert [len(s["attempts"]) for s in log["stages"]] == [1, 1]
    assert log["stages"][0]["command"] == shlex.join(shlex.split(WRITE))   # as written, runs/ not rewritten
    rc, err = _run(capsys, recipe, "--root", root)
    assert rc == 0 and err.count(": done (") == 2, err
    assert (root / "a" / "out.txt").read_text() == "one\ntwo\n"   # nothing ran again


def test_a_failed_stage_stops_the_run_and_the_same_command_resumes_it(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / "fail_once").touch()
    recipe = _recipe(tmp_path, WRITE, FLAKY)
    rc, err = _run(capsys, recipe, "--root", root)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: ") and "stage 2/2 exited with 3" in err
    stages = json.loads((root / "stages.json").read_text())["stages"]
    assert [s["status"] for s in stages] == ["done", "interrupted"]
    rc, err = _run(capsys, recipe, "--root", root)
    assert rc == 0, err
    assert (root / "a" / "out.txt").read_text() == "one\ntwo\n"   # stage 1 not rerun
    stages = json.loads((root / "stages.json").read_text())["stages"]
    assert [a["returncode"] for a in stages[1]["attempts"]] == [3, 0]
    assert stages[1]["seconds"] == round(sum(a["seconds"] for a in stages[1]["attempts"]), 1)
    lines = recipe_lines(root / "stages.json")
    assert lines[0].startswith(stages[0]["command"] + "  # 0 min, 1 thread, ")
    assert "2 attempts, resumed from checkpoints" in lines[1]


def test_a_changed_recipe_is_refused_with_one_line(tmp_path, capsys):
    root = tmp_path / "root"
    assert _run(capsys, _recipe(tmp_path, WRITE), "--root", root)[0] == 0
    rc, err = _run(capsys, _recipe(tmp_path, WRITE.replace("one", "uno"), name="other.txt"), "--root", root)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "stage 1 differs" in err and "stages.json" in err


def test_unknown_command_and_unfinished_log_are_refused(tmp_path, capsys):
    rc, err = _run(capsys, _recipe(tmp_path, "no-such-memsr-command --x"), "--root", tmp_path / "r")
    assert rc == 2 and err.strip() == "error: command not found: no-such-memsr-command"
    assert not (tmp_path / "r" / "stages.json").exists()      # refused before anything ran
    log = tmp_path / "stages.json"
    log.write_text(json.dumps({"stages": [{"command": "x", "status": "interrupted", "attempts": []}]}))
    try:
        recipe_lines(log)
    except run_recipe.MemsrError as e:
        assert "stage 1 is interrupted" in str(e)
    else:
        raise AssertionError("an unfinished log was accepted")


def test_describe_says_whether_the_machine_was_shared():
    stage = {"command": "memsr-train student --threads 2 --out runs/s", "seconds": 5400.0, "status": "done",
             "attempts": [{"others_cpu_cores": 0.05}, {"others_cpu_cores": 1.4}]}
    assert run_recipe.describe(stage) == ("90 min, 2 threads, machine shared (others used up to 1.4 cores), "
                                          "2 attempts, resumed from checkpoints")
    stage["attempts"] = [{"others_cpu_cores": 0.1}]
    stage["existing_checkpoint"] = True
    assert run_recipe.describe(stage) == ("90 min, 2 threads, alone, continued a checkpoint made before this log, "
                                          "whose minutes are not counted")


def test_threads_override_runs_each_stage_with_it_and_logs_it(tmp_path, capsys):
    root = tmp_path / "root"
    recipe = _recipe(tmp_path, WRITE)
    rc, err = _run(capsys, recipe, "--root", root, "--threads", 2)
    assert rc == 0, err
    log = json.loads((root / "stages.json").read_text())
    assert log["stages"][0]["command"].endswith("--threads 1")          # the recipe's command stays as written
    assert log["stages"][0]["attempts"][0]["threads"] == 2
    assert ", 2 threads, " in run_recipe.describe(log["stages"][0])
    assert run_recipe.with_threads(["a", "--threads", "1", "--out", "o"], 4) == ["a", "--threads", "4", "--out", "o"]
    assert run_recipe.with_threads(["a", "--out", "o"], 4) == ["a", "--out", "o"]


def test_describe_counts_threads_of_every_attempt_and_attempts_whose_time_was_lost():
    stage = {"command": "memsr-train student --threads 1 --out runs/s", "seconds": 600.0, "status": "done",
             "attempts": [{"seconds": None, "others_cpu_cores": None},
                          {"seconds": 600.0, "others_cpu_cores": 0.1, "threads": 2}]}
    assert run_recipe.describe(stage) == ("10 min, 1 or 2 threads, alone while timed, 2 attempts, resumed from checkpoints, "
                                          "1 attempt stopped with the machine, minutes not counted")


def _train_commands():
    """Every memsr-train command of the bundled models' recipes (also those quoted in comment lines) and of the
    recipe files."""
    from pathlib import Path
    from memsr_deploy.formats.registry import PRETRAINED_DIR
    lines = [line for p in sorted(PRETRAINED_DIR.glob("*.json")) for line in json.loads(p.read_text()).get("recipe", [])]
    for p in sorted((Path(run_recipe.__file__).parent / "recipes").glob("*.txt")):
        lines += p.read_text().splitlines()
    for line in lines:
        if "memsr-train " in line:
            yield shlex.split("memsr-train " + line.split("memsr-train ", 1)[1], comments=True)


def test_every_recorded_training_command_still_parses():
    from memsr_deploy.cli.train import parser
    commands = list(_train_commands())
    assert len(commands) >= 12
    for argv in commands:
        try:
            parser().parse_args(argv[1:])
        except SystemExit:
            raise AssertionError(f"no longer a valid command: {shlex.join(argv)}") from None
