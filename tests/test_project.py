"""The README's commands are what CI runs."""
import re

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_cmd = next(b for b in blocks if "pytest" in b)
    assert test_cmd.strip() in (REPO / ".ci" / "run").read_text()
    assert "torch==2.13.0" in blocks[0] and "torch==2.13.0" in test_cmd
