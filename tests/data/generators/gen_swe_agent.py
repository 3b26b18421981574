# ruff: noqa: E501
"""Regenerate tests/data/swe_agent/calc__calc-1.traj: a SWE-agent 0.x trajectory, hand-built.

SWE-agent needs Docker to run, so this file is written by hand in the exact layout of
``sweagent/agent/agents.py`` (``Agent.run`` builds ``trajectory`` turns ``{action, observation,
response, state, thought}``, ``Agent.forward`` appends ``history`` entries, ``save_trajectory``
writes ``{environment, trajectory, history, info}``) of ``pip download sweagent==0.0.1 --no-deps``,
with the default system/instance/next-step templates. Usage: ``python gen_swe_agent.py ../swe_agent``.
"""

import json
import sys

SYSTEM = (
    "SETTING: You are an autonomous programmer, and you're working directly in the command line with a special interface.\n\n"
    "The special interface consists of a file editor that shows you 100 lines of a file at a time.\n"
    "In addition to typical bash commands, you can also use the following commands to help you navigate and edit files.\n\nCOMMANDS:\n"
    "open:\n  docstring: opens the file at the given path in the editor. If line_number is provided, the window will be move to include that line\n  signature: open <path> [<line_number>]\n\n"
    "search_dir:\n  docstring: searches for search_term in all files in dir. If dir is not provided, searches in the current directory\n  signature: search_dir <search_term> [<dir>]\n\n"
    "edit:\n  docstring: replaces lines <start_line> through <end_line> (inclusive) with the given text in the open file.\n  signature: edit <start_line>:<end_line>\n<replacement_text>\nend_of_edit\n\n"
    "submit:\n  docstring: submits your current code and terminates the session\n  signature: submit\n\n"
    "RESPONSE FORMAT:\nYour shell prompt is formatted as follows:\n(Open file: <path>) <cwd> $\n\n"
    "You need to format your output using two fields; discussion and command."
)
ISSUE = "calc.add returns the difference of its arguments\n\n```python\n>>> from calc import add\n>>> add(2, 3)\n-1\n```\nExpected 5."
INSTANCE = (
    "We're currently solving the following issue within our repository. Here's the issue text:\nISSUE:\n"
    + ISSUE
    + "\n\nINSTRUCTIONS:\nNow, you're going to solve this issue on your own. Your terminal session has started and you're in the repository's root directory. "
    "You can use any bash commands or the special interface to help you. Edit all the files you need to and run any checks or tests that you want.\n"
    "Remember, YOU CAN ONLY ENTER ONE COMMAND AT A TIME. You should always wait for feedback after every command.\n"
    "When you're satisfied with all of the changes you've made, you can submit your changes to the code base by simply running the submit command.\n\n"
    "(Open file: n/a)\n(Current directory: /calc__calc)\nbash-$"
)
steps = [
    (
        "First I'll reproduce the bug with a small script.",
        "create reproduce.py",
        "[File: /calc__calc/reproduce.py (1 lines total)]\n1:",
        '{"open_file": "/calc__calc/reproduce.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Write the reproduction.",
        "edit 1:1\nfrom calc import add\nprint(add(2, 3))\nend_of_edit",
        "[File: /calc__calc/reproduce.py (2 lines total)]\n1:from calc import add\n2:print(add(2, 3))\nFile updated. Please review the changes and make sure they are correct (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
        '{"open_file": "/calc__calc/reproduce.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Run it.",
        "python reproduce.py",
        "-1",
        '{"open_file": "/calc__calc/reproduce.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Find where add is defined.",
        'search_dir "def add"',
        'Found 1 matches for "def add" in /calc__calc:\n/calc__calc/calc.py (1 matches)\nEnd of matches for "def add" in /calc__calc',
        '{"open_file": "/calc__calc/reproduce.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Open calc.py.",
        "open calc.py",
        "[File: /calc__calc/calc.py (6 lines total)]\n1:def add(a, b):\n2:    return a - b\n3:\n4:\n5:def mul(a, b):\n6:    return a * b",
        '{"open_file": "/calc__calc/calc.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Line 2 subtracts; it should add.",
        "edit 2:2\n    return a + b\nend_of_edit",
        "[File: /calc__calc/calc.py (6 lines total)]\n1:def add(a, b):\n2:    return a + b\n3:\n4:\n5:def mul(a, b):\n6:    return a * b\nFile updated. Please review the changes and make sure they are correct (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
        '{"open_file": "/calc__calc/calc.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Check the fix.",
        "python reproduce.py",
        "5",
        '{"open_file": "/calc__calc/calc.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Remove the script and submit.",
        "rm reproduce.py",
        "Your command ran successfully and did not produce any output.",
        '{"open_file": "/calc__calc/calc.py", "working_dir": "/calc__calc"}',
    ),
    (
        "Done.",
        "submit",
        "\ndiff --git a/calc.py b/calc.py\nindex f905fb9..717f7ed 100644\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n",
        '{"open_file": "/calc__calc/calc.py", "working_dir": "/calc__calc"}',
    ),
]
trajectory, history = (
    [],
    [
        {"role": "system", "content": SYSTEM, "agent": "primary"},
        {"role": "user", "content": INSTANCE, "agent": "primary"},
    ],
)
prev_state = '{"open_file": "n/a", "working_dir": "/calc__calc"}'
for thought, action, obs, state in steps:
    response = f"DISCUSSION\n{thought}\n```\n{action}\n```"
    history.append(
        {
            "role": "assistant",
            "content": response,
            "thought": f"DISCUSSION\n{thought}\n",
            "action": action + "\n",
            "agent": "primary",
        }
    )
    trajectory.append(
        {
            "action": action + "\n",
            "observation": obs,
            "response": response,
            "state": prev_state,
            "thought": f"DISCUSSION\n{thought}\n",
        }
    )
    st = json.loads(state)
    if action != "submit":
        history.append(
            {
                "role": "user",
                "content": (obs or "Your command ran successfully and did not produce any output.")
                + f"\n(Open file: {st['open_file']})\n(Current directory: {st['working_dir']})\nbash-$",
                "agent": "primary",
            }
        )
    prev_state = state
info = {
    "exit_status": "submitted",
    "submission": steps[-1][2],
    "model_stats": {
        "total_cost": 0.0,
        "instance_cost": 0.21841,
        "tokens_sent": 20513,
        "tokens_received": 402,
        "api_calls": 9,
    },
}
with open(sys.argv[1] + "/calc__calc-1.traj", "w") as fp:
    json.dump(
        {"environment": "swe_main", "trajectory": trajectory, "history": history, "info": info}, fp, indent=2
    )
