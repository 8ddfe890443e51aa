"""pyproject.toml in the form current setuptools reads without deprecation warnings."""

from __future__ import annotations

import re
import tomllib

from orchestrator.config import PROJECT_ROOT


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    # A `license = {text = ...}` table makes every first set-up print a setuptools
    # deprecation banner that looks like an error; the SPDX string needs setuptools>=77.
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    requires = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert len(requires) == 1
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requires[0])
    assert minimum and int(minimum.group(1)) >= 77
