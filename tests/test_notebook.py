"""notebooks/tutorial.ipynb runs end to end (nbclient), as a new user would run it top to bottom."""

from pathlib import Path

import pytest

# the dev extra's; a machine with only the package (a lent GPU machine, say) skips this file
nbformat = pytest.importorskip("nbformat", reason='the dev extra: pip install -e ".[dev]"')
NotebookClient = pytest.importorskip("nbclient", reason='the dev extra: pip install -e ".[dev]"').NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_the_tutorial_runs_end_to_end(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    kinds = [kind for output in outputs for kind in output.get("data", {})]
    assert kinds.count("image/png") >= 4 and "image/gif" in kinds  # the digits were drawn, and the morph
    assert "application/vnd.jupyter.widget-view+json" in kinds  # the sliders
    text = "".join(output.get("text", "") for output in outputs)
    assert "label accuracy" in text and "val/fid" in text  # the evaluation and the minute of training
