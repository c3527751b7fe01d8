"""The report's plots: PNG files drawn without pyplot, leaving the caller's matplotlib backend alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import pytest
from conftest import write_image
from PIL import Image

from resnet_automl.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]


def _backend():
    """The backend chosen so far, or None; asking never selects one (which would import pyplot)."""
    try:
        return matplotlib.get_backend(auto_select=False)
    except TypeError:  # matplotlib < 3.10
        return matplotlib.rcParams._get_backend_or_none()


def _draw_all(folder: Path, images: list) -> dict:
    bins = [{"low": i / 10, "high": (i + 1) / 10, "accuracy": None if i == 3 else i / 10} for i in range(10)]
    mistakes = [{"path": str(path), "true": "cat", "predicted": "dog", "score": 0.9} for path in images]
    return {
        "confusion_matrix": plots.confusion_matrix_plot([[5, 1, 0], [2, 3, 1], [0, 0, 6]], ["a", "b", "c"],
                                                        folder / "confusion_matrix.png"),
        "reliability": plots.reliability_plot(bins, 0.042, folder / "reliability.png"),
        "training_curves": plots.training_curves_plot({"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
                                                       "accuracy": [0.4, 0.7, 0.8]}, folder / "training_curves.png"),
        "mistakes": plots.mistakes_gallery(mistakes, folder / "mistakes.png"),
        "no_mistakes": plots.mistakes_gallery([], folder / "no_mistakes.png"),
    }


def _images(folder: Path) -> list:
    return [write_image(folder / f"{i}.png", seed=i) for i in range(5)]


def test_every_plot_is_a_non_empty_png(tmp_path):
    before = _backend()
    pictures = _draw_all(tmp_path, _images(tmp_path / "images"))
    for name, path in pictures.items():
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        with Image.open(path) as image:
            assert image.width >= 300 and image.height >= 300, (name, image.size)
    assert _backend() == before
    if "matplotlib.pyplot" in sys.modules:  # imported by someone else: still no figure of ours left open
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import matplotlib
    if sys.argv[1] != "-":
        matplotlib.use(sys.argv[1])  # the caller's own choice
    sys.path[:0] = ["tests", "tests/report"]
    import test_plots
    before = test_plots._backend()
    pictures = test_plots._draw_all(Path(sys.argv[2]), [Path(p) for p in json.loads(sys.argv[3])])
    print(json.dumps({"before": before, "after": test_plots._backend(),
                      "pyplot": "matplotlib.pyplot" in sys.modules,
                      "sizes": {name: path.stat().st_size for name, path in pictures.items()}}))
""")


@pytest.mark.parametrize("backend", ["-", "svg"])
def test_importing_and_drawing_leaves_the_backend_and_pyplot_alone(tmp_path, backend):
    """In a fresh interpreter: the backend (none chosen yet, or the caller's) is unchanged and pyplot
    is never imported."""
    images = _images(tmp_path / "images")
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(tmp_path), json.dumps([str(p) for p in images])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["before"] == (None if backend == "-" else backend)
    assert result["after"] == result["before"]
    assert result["pyplot"] is False
    assert all(size > 1000 for size in result["sizes"].values()), result["sizes"]
