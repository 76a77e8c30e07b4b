"""The README's table of commands is the server's own table."""

from __future__ import annotations

from mailflow.casework import authz
from tests.conftest import ROOT


def test_readme_command_table_is_generated_from_the_matrix() -> None:
    readme = (ROOT / "README.md").read_text()
    between = readme.split("<!-- commands:begin -->\n", 1)[1].split("\n<!-- commands:end -->")[0]
    assert between == authz.markdown_table()
