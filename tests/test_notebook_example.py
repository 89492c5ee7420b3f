"""examples/listening.ipynb runs top to bottom on the demo lake, in a real Jupyter kernel.

The kernel (ipykernel, driven by nbclient over loopback sockets; no network) inherits this
process's environment, which is how the notebook finds the demo lake: `LAKE_URI`, exactly as a
user would start Jupyter. The notebook's own asserts and this test's checks of its outputs both
have to hold.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from spotify_etl.demo import run_demo

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "listening.ipynb"
DEMO_DAYS = 2  # the shortest demo that still has several days of plays


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("demo") / "lake"
    quiet = lambda _: None  # noqa: E731
    assert run_demo(lake=str(lake), days=DEMO_DAYS, out=quiet, progress=quiet) == 0
    return lake


def test_the_example_notebook_runs_on_the_demo_lake(
    demo_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_URI", str(demo_lake))
    monkeypatch.delenv("QUERY_ENGINE", raising=False)
    # Keep the kernel's own files (connection file, IPython profile) out of the home directory.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend (Agg) draws
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "the notebook is stored without outputs"
    )

    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    # The three charts were drawn: minutes per day, top artists, the listening clock.
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3
    texts = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert f"<Lake duckdb {demo_lake.resolve()}>" in texts
    assert "datetime64[ns]" in texts and "Int64" in texts  # the dtypes cell
    for query in ("daily_listening", "top_artists", "listening_clock"):
        assert query in texts  # the catalogue cell lists them
