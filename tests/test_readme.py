"""The README is the front door: short, its links resolve, and every command in it is exercised.

Each command of the README's ``bash`` blocks is listed in ``COVERED`` with what exercises it: a
test (at reduced size where the command is long; most are here, beside the README they check) or
``.ci/run``, which must run the same line. A command added to the README without an entry, or an
entry whose command left the README, fails ``test_every_readme_command_is_exercised``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import train

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_LIMIT_BYTES = 12 * 1024  # Gymnasium's, SB3's and dm_control's READMEs are 4-16 KB

#: README command -> what exercises it ("tests/<file>.py::<test>" or ".ci/run").
COVERED: dict[str, str] = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,docs]"': ".ci/run",
    ".venv/bin/python train.py": "tests/test_readme.py::test_the_main_job_at_reduced_size",
    ".venv/bin/python -m pytest": ".ci/run",
    "python train.py --env quant_envs/MixedPrecision-v1 --algo maskable_ppo --timesteps 4000 --seed 0 "
    "--env-kwargs hardware=bismo-edge budget_fraction=0.4 --max-evaluations 200":
        "tests/test_readme.py::test_readme_train_and_resume_at_reduced_size",
    "python train.py --resume --out runs/MixedPrecision-v1/maskable_ppo-s0":
        "tests/test_readme.py::test_readme_train_and_resume_at_reduced_size",
    "python train.py compare --agents maskable_ppo --baselines uniform random greedy_std hawq_v3 evolution "
    "--seeds 5 --max-evaluations 100 --final-finetune-steps 100 --jobs 2 --out results/compare-medium":
        "tests/test_readme.py::test_readme_compare_at_reduced_size",
}

#: Flags that only set a run's size, and the reduced value a test gives them.
REDUCED = {"--timesteps": "64", "--max-evaluations": "3", "--seeds": "1", "--final-finetune-steps": "0"}
#: The 4-layer digits task without retraining: an evaluation takes milliseconds.
SMALL_TASK = ["task=digits-cnn", "finetune_steps=0"]


def readme_commands(text: str) -> list[str]:
    """Every command of the ``bash`` blocks: continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                commands.append(" ".join(line.split()))
    return commands


def readme_argv(prefix: str) -> list[str]:
    """The arguments after ``python train.py`` of the README command starting with ``prefix``."""
    (command,) = [c for c in readme_commands(README.read_text(encoding="utf-8")) if c.startswith(prefix)]
    return shlex.split(command)[2:]


def with_out(argv: list[str], out: Path) -> list[str]:
    """``argv`` writing to ``out`` instead of the README's folder."""
    args = list(argv)
    if "--out" not in args:
        return [*args, "--out", str(out)]
    args[args.index("--out") + 1] = str(out)
    return args


def reduced(argv: list[str], out: Path) -> list[str]:
    """``argv`` at test size: size flags shrunk, the small task added, ``--out`` moved to ``out``."""
    args = with_out(argv, out)
    for i, arg in enumerate(args[:-1]):
        if arg in REDUCED:
            args[i + 1] = REDUCED[arg]
    if "--env-kwargs" in args:
        at = args.index("--env-kwargs") + 1
        while at < len(args) and not args[at].startswith("--"):
            at += 1
        args[at:at] = SMALL_TASK
    else:
        args += ["--env-kwargs", *SMALL_TASK]
    return args


def test_readme_is_at_most_12_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; reference material belongs in docs/"


def test_readme_links_point_at_files_in_the_repository() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links into the docs"
    missing = [link for link in local if not (REPO / link).resolve().is_file()]
    assert not missing, f"README links to missing files: {missing}"
    assert all((REPO / link).resolve().is_relative_to(REPO) for link in local), "a link leaves the repository"


def test_every_readme_command_is_exercised() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) == len(set(commands)) >= 5
    assert set(commands) == set(COVERED), (
        f"README commands without an entry in COVERED: {sorted(set(commands) - set(COVERED))}; "
        f"entries whose command left the README: {sorted(set(COVERED) - set(commands))}")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command, where in COVERED.items():
        if where == ".ci/run":  # the same line (CI may add flags after it, e.g. pytest's --durations)
            assert any(line == command or line.startswith(command + " ") for line in ci), command
        else:
            path, name = where.split("::")
            assert re.search(rf"^def {name}\(", (REPO / path).read_text(encoding="utf-8"), flags=re.M), where


def test_reduced_keeps_every_flag_and_shrinks_only_the_size() -> None:
    argv = readme_argv("python train.py compare")
    small = reduced(argv, Path("/tmp/x"))
    assert [a for a in small if a.startswith("--")] == [a for a in argv if a.startswith("--")] + ["--env-kwargs"]
    assert small[small.index("--seeds") + 1] == "1" and small[small.index("--jobs") + 1] == "2"
    assert small[small.index("--out") + 1] == "/tmp/x"


def test_readme_python_example_runs() -> None:
    (code,) = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the default task, trained once into the test cache
    env, action = namespace["env"], namespace["action"]
    assert action == len(env.unwrapped.bits) - 1  # the first layer: every width fits, 8 bits the widest
    assert namespace["reward"] == 0 and not namespace["terminated"]  # one layer of eight chosen
    assert env.observation_space.contains(namespace["obs"])
    env.close()


def test_the_main_job_at_reduced_size(tmp_path: Path) -> None:
    """``train.py`` with its defaults (MixedPrecision-v1, the MNIST-1D task, MaskablePPO), fewer steps."""
    out = tmp_path / "main"
    assert train.main(["--timesteps", "16", "--max-evaluations", "2", "--out", str(out), "--no-progress-bar"]) == 0
    for name in ("best_policy.json", "evaluations.csv", "summary.png", "model.zip"):
        assert (out / name).is_file(), name
    assert '"quant_envs/MixedPrecision-v1"' in (out / "config.json").read_text()


def test_readme_train_and_resume_at_reduced_size(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train.main([*reduced(readme_argv("python train.py --env"), out), "--no-progress-bar"]) == 0
    before = (out / "evaluations.csv").read_text()
    resume = with_out(readme_argv("python train.py --resume"), out)  # the run's own settings: nothing to shrink
    assert train.main([*resume, "--no-progress-bar"]) == 0
    assert (out / "evaluations.csv").read_text() == before  # a finished run has nothing left to do


@pytest.mark.slow  # six methods in two worker processes: about 30 s on 2 cores
def test_readme_compare_at_reduced_size(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    assert train.main(reduced(readme_argv("python train.py compare"), out)) == 0
    table = (out / "results.md").read_text()
    for method in ("maskable_ppo", "uniform", "random", "greedy_std", "hawq_v3", "evolution"):
        assert f"| {method} |" in table


def _markdown_rows(text: str) -> list[dict[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[1:]]


def test_readme_results_table_is_the_recorded_comparison() -> None:
    """The README's small table is a column subset of the comparison's recorded output."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| method | final test acc. IQM"):]
    readme_rows = _markdown_rows(table.split("\n\n")[0])
    recorded = {r["method"]: r for r in _markdown_rows(
        (REPO / "benchmarks" / "recorded" / "compare-medium.md").read_text(encoding="utf-8"))}
    assert len(readme_rows) == len(recorded)
    for row in readme_rows:
        assert row == {k: recorded[row["method"]][k] for k in row}, row["method"]
