"""CSV and JSON Lines manifests: column detection, splits, the audit of what tables get wrong, and
the errors a user can cause (each naming the row, column or file and the fix)."""
from __future__ import annotations

import json

import pytest
from conftest import write_image

from resnet_automl.cli.main import main
from resnet_automl.data import prepare_data
from resnet_automl.data.manifest import ManifestColumns, is_manifest, scan_manifest
from resnet_automl.errors import DataError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture
def pictures(tmp_path):
    """12 images per colour under tmp_path/img/, named <colour><i>.png (no class folders)."""
    for name, colour in COLOURS.items():
        for i in range(12):
            write_image(tmp_path / "img" / f"{name}{i}.png", colour, seed=i)
    return tmp_path


def _rows(split_every=None):
    rows = []
    for name in COLOURS:
        for i in range(12):
            split = ("train", "train", "val", "test")[i % 4] if split_every else None
            rows.append((f"img/{name}{i}.png", name, split))
    return rows


def _csv(folder, header, rows, name="labels.csv"):
    lines = [",".join(header)] if header else []
    lines += [",".join(str(cell) for cell in row if cell is not None) for row in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_without_split_is_split_like_class_folders(pictures):
    manifest = _csv(pictures, ["filename", "class"], [row[:2] for row in _rows()])
    assert is_manifest(manifest) and not is_manifest(pictures)
    splits = prepare_data(manifest, pictures / "run")
    assert splits.class_names == ["blue", "green", "red"]
    assert sum(len(splits.split(s)) for s in ("train", "val", "test")) == 36
    assert splits.audit["layout"] == "CSV manifest" and splits.audit["source"] == str(manifest)


def test_split_column_and_vertex_values_are_kept(pictures):
    vertex = {"train": "TRAINING", "val": "VALIDATION", "test": "TEST"}
    manifest = _csv(pictures, ["set", "path", "label"], [(vertex[s], p, n) for p, n, s in _rows(split_every=4)])
    splits = prepare_data(manifest, None)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 9, 9)
    assert all("img/" in p and int(p.split("/")[-1][len(str(splits.class_names[label])):-4]) % 4 == 3
               for p, label in splits.test)


def test_headerless_file_by_column_number(pictures):
    manifest = _csv(pictures, None, [("TRAINING", p, n) for p, n, _ in _rows()])
    scan = scan_manifest(manifest, ManifestColumns(path=1, label=2, split=0))
    assert scan.presplit and len(scan.images["train"]) == 36


def test_jsonl_with_a_label_list_of_one(pictures):
    lines = [json.dumps({"image": p, "labels": [n]}) for p, n, _ in _rows()]
    (pictures / "labels.jsonl").write_text("\n".join(lines) + "\n")
    scan = scan_manifest(pictures / "labels.jsonl")
    assert scan.class_names == ["blue", "green", "red"] and len(scan.images["all"]) == 36


def test_the_audit_lists_what_tables_get_wrong(pictures):
    rows = [row[:2] for row in _rows()]
    rows += [("img/red0.png", "red"), ("img/green0.png", "blue"), ("img/gone.png", "red"), ("img/red1.png", "")]
    scan = scan_manifest(_csv(pictures, ["path", "label"], rows))
    reasons = {item["path"].split("/")[-1]: item["reason"] for item in scan.skipped}
    assert "listed again in row 38 with the same label (first in row 2)" == reasons["red0.png"]
    assert "'green' in row 14 and 'blue' in row 39" in reasons["green0.png"]
    assert reasons["gone.png"] == "listed in row 40 but missing"
    assert reasons["red1.png"] == "empty label (row 41)"
    assert len(scan.images["all"]) == 35  # green0 is in neither class


@pytest.mark.parametrize("content, columns, message", [
    ("a.png,red\nb.png,green\n", ManifestColumns(), "has no header naming its path column"),
    ("path,label\nimg/red0.png,\nimg/red1.png,\n", ManifestColumns(), "every label is empty"),
    ("path,label\n../outside.png,red\n", ManifestColumns(), "outside the manifest's folder"),
    ("path,label\nimg/red0.png,red|blue\n", ManifestColumns(label_delimiter="|", task="multiclass"), "several labels"),
    ("path,label,split\nimg/red0.png,red,holdout\n", ManifestColumns(), "split 'holdout'"),
    ("path,label\nimg/red0.png,red\n", ManifestColumns(label="tag"), "no column 'tag'"),
])
def test_bad_manifests_name_the_row_or_column_and_the_fix(pictures, content, columns, message):
    manifest = pictures / "labels.csv"
    manifest.write_text(content)
    with pytest.raises(DataError, match=message):
        scan_manifest(manifest, columns)


def test_unreadable_encoding_and_too_few_images_exit_2(pictures, capsys):
    manifest = pictures / "labels.csv"
    manifest.write_bytes("path,label\nimg/red0.png,caf\xe9\n".encode("latin-1"))
    assert main(["fit", str(manifest), "--out", str(pictures / "run")]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    rows = [row[:2] for row in _rows() if row[1] != "blue"] + [("img/blue0.png", "blue")]
    _csv(pictures, ["path", "label"], rows)
    assert main(["fit", str(manifest), "--out", str(pictures / "run2")]) == 2
    err = capsys.readouterr().err
    assert "'blue' has 1 readable image(s) in the manifest" in err and "Traceback" not in err


def _jsonl(folder, rows, name="labels.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps({"image": p, "label": n}) + "\n" for p, n, _ in rows), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv with split", "csv", "jsonl"])
def test_a_manifest_fits_exports_reports_predicts_and_evaluates(pictures, capsys, kind):
    import resnet_automl
    from resnet_automl import load_model

    if kind == "csv with split":
        manifest = _csv(pictures, ["path", "label", "split"], _rows(split_every=4))
    elif kind == "csv":
        manifest = _csv(pictures, ["path", "label"], [row[:2] for row in _rows()])
    else:
        manifest = _jsonl(pictures, _rows())
    result = resnet_automl.fit(manifest, out=pictures / "run", backbone="tiny_resnet", weights=None, image_size=32,
                               epochs=1, final_epochs=1, budget=resnet_automl.Budget(max_trials=1), verbose=0)
    assert result.report["audit"]["layout"] == f"{manifest.suffix[1:].upper()} manifest"
    assert result.report["task"] == "multiclass" and result.report["num_test_images"] >= 5
    assert (pictures / "run" / "report" / "report.html").exists()
    predictor = load_model(result.paths["run_dir"])
    assert predictor.thresholds is None
    assert predictor.predict([str(pictures / "img" / "red3.png")])[0]["labels"][0] in COLOURS
    assert main(["evaluate", result.paths["run_dir"], str(manifest), "--out", str(pictures / "eval")]) == 0
    assert "on 36 images" in capsys.readouterr().out
