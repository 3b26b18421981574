"""``goalkeeper import``: trajectories to goalkeeper JSONL, on stdout or atomically into a file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from goalkeeper.cli._app import build_app
from goalkeeper.events import read_jsonl
from goalkeeper.importers import read_trajectories

DATA = Path(__file__).resolve().parent.parent / "data"
SWE = DATA / "swe_agent" / "calc__calc-1.traj"
OUTPUT = DATA / "openhands" / "output.jsonl"
TAU_SAMPLE = DATA / "openai_chat" / "tau_bench_airline_sample.json"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_to_stdout_is_valid_jsonl_with_the_imported_events() -> None:
    code, out, err = run("import", str(SWE), str(TAU_SAMPLE))
    assert code == 0
    events = list(read_jsonl(out.splitlines()))
    expected = [e for path in (SWE, TAU_SAMPLE) for t in read_trajectories(path) for e in t.events]
    assert events == expected
    assert f"imported 4 trajectories, {len(expected)} events -> stdout" in err


def test_import_to_a_file_and_reimport_is_identical(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    code, stdout, _ = run("import", str(OUTPUT), "-o", str(out), "--format", "openhands")
    assert code == 0
    assert stdout == ""
    first = out.read_text(encoding="utf-8")
    code, _, _ = run("import", str(OUTPUT), "--output", str(out))
    assert out.read_text(encoding="utf-8") == first  # deterministic event ids
    # The JSONL reads back as the same trajectory, and analyze accepts it.
    (back,) = read_trajectories(out)
    (source,) = read_trajectories(OUTPUT)
    assert back.events == source.events
    code, stdout, _ = run("analyze", str(out))
    assert code == 0
    assert "calc__calc-2" in stdout


def test_failed_import_leaves_no_file_behind(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    bad = tmp_path / "bad.traj"
    bad.write_text(
        '{"trajectory": [{"action": 1}], "history": [{"role": "user", "content": "x"}]}', encoding="utf-8"
    )
    code, _, err = run("import", str(SWE), str(bad), "-o", str(out))
    assert code == 2
    assert f"{bad}: trajectory[0].action: expected a string, got the number 1" in err
    assert list(tmp_path.iterdir()) == [bad]


def test_existing_output_survives_a_failed_import(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    code, _, _ = run("import", str(tmp_path / "missing.json"), "-o", str(out))
    assert code == 2
    assert out.read_text(encoding="utf-8") == "keep me\n"


def test_unwritable_output_is_a_runtime_failure(tmp_path: Path) -> None:
    code, _, err = run("import", str(SWE), "-o", str(tmp_path / "no" / "such" / "dir" / "x.jsonl"))
    assert code == 1
    assert "No such file or directory" in err
    assert "Traceback" not in err
