"""The chapters in git carry no outputs, no execution counts, no widget state (nothing
nbstripout would remove: scripts/course.py strips and checks with nbstripout), and their
exercise/solution cells are tagged (the student version and the book depend on it).

Fix a failure with ``python scripts/course.py strip`` (outputs) or
``python scripts/course.py tag`` (tags), then commit the notebooks.
"""
from __future__ import annotations

import pytest

import course
from notebook_utils import NOTEBOOKS_DIR, notebook_paths

CHAPTERS = notebook_paths(NOTEBOOKS_DIR)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_notebook_has_no_outputs(path):
    problems = course.hygiene_problems(course.read(path))
    assert not problems, (f"{path.name}: {'; '.join(problems)}. "
                          "Run `python scripts/course.py strip` and commit the notebook.")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_exercise_and_solution_cells_are_tagged(path):
    nb = course.read(path)
    missing = course.tag_notebook(nb)
    assert not missing, (f"{path.name}: untagged exercise cells ({', '.join(missing)}). "
                         "Run `python scripts/course.py tag` and commit the notebook.")
    sols = [i for i, c in enumerate(nb["cells"]) if course.SOLUTION in course.tags(c)]
    for i in sols:
        assert i > 0 and course.EXERCISE in course.tags(nb["cells"][i - 1]), (
            f"{path.name}: solution cell {i} does not follow its exercise cell")


def test_hygiene_check_catches_outputs_and_strip_removes_them():
    nb = course.read(CHAPTERS[0])
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    code["execution_count"] = 3
    nb["metadata"]["widgets"] = {"state": {}}
    assert len(course.hygiene_problems(nb)) == 3
    assert course.strip_outputs(nb) and course.hygiene_problems(nb) == []
    assert not course.strip_outputs(nb), "stripping twice changed the notebook again"
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["metadata"]["execution"] = {"iopub.status.busy": "2026-12-06T17:00:00Z"}   # nbclient's timing
    assert course.hygiene_problems(nb) == ["metadata that nbstripout removes (e.g. cell execution timing)"]
    assert course.strip_outputs(nb) and course.hygiene_problems(nb) == []
    assert "execution" not in next(c for c in nb["cells"] if c["cell_type"] == "code")["metadata"]


def test_strip_keeps_sources_tags_and_ids():
    nb = course.read(CHAPTERS[0])
    before = [(c.get("id"), course.source(c), course.tags(c)) for c in nb["cells"]]
    course.strip_outputs(nb)
    assert [(c.get("id"), course.source(c), course.tags(c)) for c in nb["cells"]] == before


def test_tagging_finds_a_first_attempt_and_its_fix():
    def code(src):
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": src}

    nb = {"cells": [code("import numpy as np"),
                    code("def f(x):\n    return x\n\ncheck_f(f)"),
                    code("def f(x):\n    return 2 * x\n\ncheck_f(f)"),
                    code("def g(x):\n    return x\n\ncheck_f(g)")]}
    assert course.tag_notebook(nb) == ["cell 1: +exercise", "cell 2: +solution"]
    assert course.tag_notebook(nb) == [], "tagging is not idempotent"
    stub = course.stub_source(nb, 2)
    assert "return 2 * x" not in stub and "check_f(f)" in stub and "`f`" in stub
