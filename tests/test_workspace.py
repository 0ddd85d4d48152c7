"""Working copies: scripts/lab.sh serves workspace/, never the tracked notebooks/.

``course.sync_workspace`` (what lab.sh runs first) copies the chapters on first use, adds
new chapters later, replaces a copy only with ``refresh`` or when the edition changes
(``--student`` / ``--full``), and then backs up every copy the student ran or edited. The last test starts scripts/lab.sh itself (set-up skipped,
this venv), saves an edited, executed chapter through JupyterLab's API like autosave
does, and checks that notebooks/ stays clean and that the news pop-up is switched off.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import course
from notebook_utils import NOTEBOOKS_DIR, REPO, notebook_paths

CHAPTERS = notebook_paths(NOTEBOOKS_DIR)


def _chapters(tmp_path: Path, names=("00_primer.ipynb", "01_nif.ipynb")) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    for name in names:
        shutil.copy(NOTEBOOKS_DIR / name, src / name)
    return src


def _edit(path: Path, text: str = "# my own notes") -> None:
    nb = course.read(path)
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": text})
    course.write(nb, path)


def test_first_use_copies_every_chapter_and_a_second_run_changes_nothing(tmp_path):
    src, ws = _chapters(tmp_path), tmp_path / "workspace"
    notes = course.sync_workspace(ws, source=src)
    assert sorted(p.name for p in ws.glob("*.ipynb")) == sorted(p.name for p in src.glob("*.ipynb"))
    assert all("copied" in n for n in notes), notes
    assert course.sync_workspace(ws, source=src) == []


def test_edits_survive_without_refresh_and_are_backed_up_with_it(tmp_path):
    src, ws = _chapters(tmp_path), tmp_path / "workspace"
    course.sync_workspace(ws, source=src)
    _edit(ws / "00_primer.ipynb", "# student's answer")
    _edit(src / "00_primer.ipynb", "# a newer chapter")             # the chapter changed upstream
    notes = course.sync_workspace(ws, source=src)
    assert "# student's answer" in (ws / "00_primer.ipynb").read_text(), "an edit was overwritten"
    assert any("newer version" in n for n in notes), notes

    notes = course.sync_workspace(ws, refresh=True, source=src, stamp="t1")
    backup = ws / ".backup" / "t1" / "00_primer.ipynb"
    assert backup.is_file() and "# student's answer" in backup.read_text(), notes
    assert "# a newer chapter" in (ws / "00_primer.ipynb").read_text()
    assert not (ws / ".backup" / "t1" / "01_nif.ipynb").exists(), "an untouched copy was backed up"


def test_new_chapters_are_added_and_student_edition_has_stubs(tmp_path):
    src, ws = _chapters(tmp_path, ("00_primer.ipynb",)), tmp_path / "workspace"
    course.sync_workspace(ws, source=src, student=True)
    nb = course.read(ws / "00_primer.ipynb")
    assert not course.has_solution(nb) and any(course.STUB in course.tags(c) for c in nb["cells"])
    shutil.copy(NOTEBOOKS_DIR / "01_nif.ipynb", src / "01_nif.ipynb")
    notes = course.sync_workspace(ws, source=src, student=True)
    assert (ws / "01_nif.ipynb").is_file() and any("01_nif" in n for n in notes)


def test_student_switches_an_existing_workspace_and_backs_up_edited_copies(tmp_path):
    src, ws = _chapters(tmp_path), tmp_path / "workspace"
    course.sync_workspace(ws, source=src)                        # first use: the full edition
    assert course.workspace_edition(ws) == "full"
    assert course.has_solution(course.read(ws / "00_primer.ipynb"))
    _edit(ws / "00_primer.ipynb", "# student's answer")
    notes = course.sync_workspace(ws, source=src, student=True, stamp="t2")
    assert course.workspace_edition(ws) == "student"
    for name in ("00_primer.ipynb", "01_nif.ipynb"):
        nb = course.read(ws / name)
        assert not course.has_solution(nb), f"{name} still shows its solutions after --student"
    backup = ws / ".backup" / "t2" / "00_primer.ipynb"
    assert backup.is_file() and "# student's answer" in backup.read_text(), notes
    assert not (ws / ".backup" / "t2" / "01_nif.ipynb").exists(), "an untouched copy was backed up"
    summary = notes[-1]
    assert summary.startswith("switched the workspace from the full to the student edition"), notes
    assert "2 chapter(s) replaced" in summary and "1 edited copy saved in .backup/t2/" in summary, summary
    assert not any("newer version" in n for n in notes), notes

    assert course.sync_workspace(ws, source=src) == [], "a plain start should keep the student edition"
    _edit(ws / "01_nif.ipynb", "# another answer")
    notes = course.sync_workspace(ws, source=src, student=False, stamp="t3")
    assert course.workspace_edition(ws) == "full" and course.has_solution(course.read(ws / "01_nif.ipynb"))
    assert (ws / ".backup" / "t3" / "01_nif.ipynb").is_file(), notes
    assert notes[-1].startswith("switched the workspace from the student to the full edition"), notes


def test_workspace_command_says_which_edition_and_how_to_switch(tmp_path, capsys):
    ws = tmp_path / "workspace"
    assert course.main(["workspace", "--dir", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "workspace: full edition; `bash scripts/lab.sh --student` switches" in out, out
    assert course.main(["workspace", "--dir", str(ws), "--student"]) == 0
    out = capsys.readouterr().out
    assert "switched the workspace from the full to the student edition" in out, out
    assert f"{len(CHAPTERS)} chapter(s) replaced" in out, out
    assert "`bash scripts/lab.sh --full` switches" in out, out


def _git_status(paths) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.timeout(180)
def test_lab_sh_serves_the_working_copy_and_keeps_notebooks_clean(tmp_path):
    ws = tmp_path / "workspace"
    before = _git_status(["notebooks"])
    env = dict(os.environ, NIFKIT_SKIP_SETUP="1", NIFKIT_VENV=sys.prefix, NIFKIT_WORKSPACE=str(ws),
               JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lw"))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "lab.sh")], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            m = re.search(r"^lab: open  (http://127\.0\.0\.1:(\d+)/lab\?token=(\w+))$", log.read_text(), re.M)
            if m:
                url, port, token = m.group(1), m.group(2), m.group(3)
            elif proc.poll() is not None:
                pytest.fail(f"lab.sh exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        assert url, f"lab.sh printed no URL:\n{log.read_text()[-3000:]}"
        assert "..." not in log.read_text().split("lab: open")[0], "a placeholder URL line is printed"

        def api(path, method="GET", body=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {token}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"null")

        while True:
            try:
                listing = api("/api/contents/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        served = sorted(c["name"] for c in listing["content"] if c["name"].endswith(".ipynb"))
        assert served == sorted(p.name for p in CHAPTERS), f"the server's root is not the working copy: {served}"

        # what autosave does after a student ran and edited every chapter
        for name in served:
            model = api(f"/api/contents/{name}")
            nb = model["content"]
            code = next(c for c in nb["cells"] if c["cell_type"] == "code")
            code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
            code["execution_count"] = 1
            code["source"] += "\n# edited by the student"
            api(f"/api/contents/{name}", "PUT", {"type": "notebook", "format": "json", "content": nb})
            assert "# edited by the student" in (ws / name).read_text()

        settings = api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
        assert settings["schema"]["properties"]["fetchNews"]["default"] == "false", "JupyterLab would ask about news"
        widgets = api("/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin")
        assert widgets["schema"]["properties"]["saveState"]["default"] is True, "widget state is not saved with the notebook"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert _git_status(["notebooks"]) == before, "the lab session changed the tracked notebooks/"
