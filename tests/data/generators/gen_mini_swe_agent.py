"""Regenerate tests/data/mini_swe_agent/: run mini-swe-agent 2.4.6 for real with scripted model output.

``DefaultAgent`` + ``LocalEnvironment`` execute the commands with bash in a throwaway git repository,
so observations, return codes, the exit message and the saved file are exactly what mini-swe-agent
writes; only the model is replaced by its own ``DeterministicToolcallModel`` / ``DeterministicModel``.

Usage (outside the project venv; needs jinja2, pydantic, python-dotenv, platformdirs, rich, pyyaml)::

    pip download mini-swe-agent==2.4.6 --no-deps && unzip mini_swe_agent-2.4.6-py3-none-any.whl -d mini
    MINI_SWE_AGENT_DIR=mini python gen_mini_swe_agent.py ../mini_swe_agent
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["MSWEA_SILENT_STARTUP"] = "1"
os.environ.setdefault("MSWEA_GLOBAL_CONFIG_DIR", tempfile.mkdtemp(prefix="mswea-"))
PKG = Path(os.environ.get("MINI_SWE_AGENT_DIR", "mini"))
sys.path.insert(0, str(PKG))

import yaml  # noqa: E402
from minisweagent.agents.default import DefaultAgent  # noqa: E402
from minisweagent.environments.local import LocalEnvironment  # noqa: E402
from minisweagent.models.test_models import (  # noqa: E402
    DeterministicModel,
    DeterministicToolcallModel,
    make_output,
    make_toolcall_output,
)

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"


def repo() -> Path:
    d = Path(tempfile.mkdtemp(prefix="calc-"))
    (d / "calc.py").write_text(CALC)
    init = "git init -q && git add -A && git -c user.email=a@b -c user.name=a commit -qm init"
    subprocess.run(init, shell=True, cwd=d, check=True)
    return d


def toolcall(i: int, cmd: str, text: str) -> dict:
    cid = f"call_{i:02d}"
    call = {
        "id": cid,
        "type": "function",
        "function": {"name": "bash", "arguments": json.dumps({"command": cmd})},
    }
    return make_toolcall_output(text, [call], [{"command": cmd, "tool_call_id": cid}])


def agent_args(config: dict, **overrides: object) -> dict:
    return {**{k: v for k, v in config["agent"].items() if k != "mode"}, "cost_limit": 0, **overrides}


def main(out: Path) -> None:
    cfg = yaml.safe_load((PKG / "minisweagent/config/mini.yaml").read_text())
    task = (
        "calc.add(2, 3) returns -1 instead of 5. "
        "Fix the add function in calc.py so that it returns the sum of its arguments."
    )
    steps = [
        ("ls -la", "Let me look at the repository first."),
        ("cat calc.py", "I'll read calc.py to find the add function."),
        ("python3 -c 'from calc import add; print(add(2, 3))'", "Let me reproduce the bug."),
        ("cat tests/test_calc.py", "Is there a test file for calc?"),
        (
            "sed -i 's/return a - b/return a + b/' calc.py",
            "add subtracts instead of adding; fix the operator.",
        ),
        (
            "python3 -c 'from calc import add; print(add(2, 3), add(-1, 1))'",
            "Verify the fix and an edge case.",
        ),
        ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff", "The fix works; submitting."),
    ]
    model = DeterministicToolcallModel(outputs=[toolcall(i, c, t) for i, (c, t) in enumerate(steps)])
    env = LocalEnvironment(cwd=str(repo()), env=cfg["environment"]["env"])
    agent = DefaultAgent(model, env, **agent_args(cfg))
    info = agent.run(task)
    extra = {"info": {"exit_status": info.get("exit_status"), "submission": info.get("submission")}}
    agent.save(out / "calc-add.traj.json", {**extra, "instance_id": "calc__calc-1"})

    # A text-based (regex action) run that loops on the same failing search until its step limit.
    tcfg = yaml.safe_load((PKG / "minisweagent/config/mini_textbased.yaml").read_text())
    loop = [
        ("grep -rn 'def divide' .", "I need to find the divide function."),
        ("cat calc.py", "Let me read calc.py."),
        ("grep -rn 'def divide' .", "Let me search for divide again."),
        ("grep -rn 'def divide' .", "Searching for the divide function once more."),
        ("grep -rn 'def divide' .", "Let me try to find divide again."),
        ("grep -rn 'def divide' .", "Search for divide."),
    ]
    outputs = [
        make_output(f"THOUGHT: {t}\n\n```mswea_bash_command\n{c}\n```", [{"command": c}]) for c, t in loop
    ]
    tmodel = DeterministicModel(outputs=outputs, observation_template=tcfg["model"]["observation_template"])
    tenv = LocalEnvironment(cwd=str(repo()), env=tcfg["environment"]["env"])
    tagent = DefaultAgent(tmodel, tenv, **agent_args(tcfg, step_limit=6))
    tagent.run(
        "Add a divide(a, b) function to calc.py that raises ZeroDivisionError "
        "with a clear message when b is 0."
    )
    tagent.save(out / "calc-divide-loop.traj.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
