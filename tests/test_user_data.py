"""A user's own small data set (`dataset=folder`): what loading it says, how its images are read,
how its identities are named in what the search exports, and that loading a big one is not silent."""

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnas.evaluators.config import DatasetConfig
from attnas.evaluators.progress import progress
from attnas.evaluators.reid.data import read_image
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.training import budget
from attnas.evaluators.reid_evaluator import ReIDEvaluator
from tests.folders import market_folder, prid_like

ROOT = Path(__file__).resolve().parents[1]


def test_a_root_that_does_not_exist_is_named_with_the_setting_and_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset 'folder': dataset.root=.*/nope does not exist; set it to the "
                                                r"folder holding bounding_box_train/, query/, bounding_box_test/"):
        load_dataset("folder", tmp_path / "nope")


def test_16_bit_pngs_are_read_scaled_not_white_and_loading_says_so(tmp_path, caplog):
    root = market_folder(tmp_path / "grid16", [1, 2, 3, 4], [5, 6], bits=16)
    with caplog.at_level(logging.WARNING, logger="attnas.datasets"):
        data = load_dataset("folder", root)
    assert "the train images are 16-bit grayscale (mode I;16" in caplog.text and "scaled to 8 bits" in caplog.text
    image = np.asarray(read_image(data.train[0].path))
    written = np.asarray(Image.open(data.train[0].path), dtype=float) / 257
    assert image.shape[2] == 3 and image.max() < 255  # not clipped to white
    assert np.abs(image[..., 0] - written).max() <= 1  # the 16-bit values, scaled


def test_8_bit_images_load_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="attnas.datasets"):
        load_dataset("folder", prid_like(tmp_path / "prid"))
    assert "16-bit" not in caplog.text


def test_exported_validation_ids_are_the_ids_of_the_file_names(tmp_path):
    evaluator = ReIDEvaluator(DatasetConfig(name="folder", root=str(prid_like(tmp_path / "prid"))), budget("tiny"),
                              num_val_ids=4, latency=None)
    evaluator.prepare()
    validation = evaluator.provenance()["validation"]
    assert len(validation["ids"]) == 4 and set(validation["ids"]) <= set(range(201, 213))  # PRID-like ids, not 0..11
    assert {r.pid for r in evaluator.dataset.train} == set(range(12))  # the classifier still gets labels 0..N-1


def test_a_slow_step_reports_its_progress_with_the_time_left(caplog):
    with caplog.at_level(logging.INFO, logger="attnas.progress"):
        assert list(progress(range(4), "reading the file names of big/", unit="files", delay=0, every=0)) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1].startswith("reading the file names of big/: 1 of 4 files (25%)") and "left" in lines[1]


def test_a_quick_step_stays_quiet(caplog):
    with caplog.at_level(logging.INFO, logger="attnas.progress"):
        list(progress(range(1000), "counting", delay=3.0))
    assert not caplog.records


def test_generated_data_sets_are_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/synthetic-300ids-seed0/query/0001_c1s1_000001_00.jpg"],
                             cwd=ROOT, capture_output=True)
    assert ignored.returncode == 0, "data/ must be ignored: a demo would make the provenance of a fresh clone '+dirty'"
