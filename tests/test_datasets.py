from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnas.evaluators.reid.data import IdentitySampler, ImageDataset, build_transforms, eval_loader, read_image, train_loader
from attnas.evaluators.reid.datasets import DATASETS, load_dataset
from attnas.evaluators.reid.datasets.market import parse_market_name
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _img(path: Path, size=(32, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)


def make_market(root: Path, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        for name in files:
            _img(root / folder / name)
    return root


@pytest.mark.parametrize(
    "name, expected",
    [("0002_c1s1_000451_03.jpg", (2, 0)), ("-1_c3s2_012345_00.jpg", (-1, 2)), ("0000_c6s1_0_01.jpg", (0, 5)),
     ("0001_c2_f0046182.jpg", (1, 1)), ("1367_c1_1.png", (1367, 0))],
)
def test_market_style_file_names_give_pid_and_zero_based_camera(name, expected):
    assert parse_market_name(name) == expected


def test_unreadable_file_name_is_explained():
    with pytest.raises(ValueError, match="cannot read person id and camera from file name 'IMG_001.jpg'"):
        parse_market_name("IMG_001.jpg")


def test_market_loader_drops_junk_keeps_distractors_and_relabels_train(tmp_path):
    make_market(tmp_path / "Market-1501-v15.09.15", {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000452_01.jpg", "0007_c1s1_000001_00.jpg", "-1_c1s1_0_00.jpg"],
        "query": ["0003_c1s1_000001_00.jpg"],
        "bounding_box_test": ["0003_c2s1_000002_00.jpg", "0000_c3s1_000003_00.jpg", "-1_c1s1_000004_00.jpg"],
    })
    data = load_dataset("market1501", tmp_path)  # the parent folder works too, as in torchreid
    assert sorted(r.pid for r in data.train) == [0, 0, 1]
    assert data.num_train_pids == 2
    assert sorted(r.pid for r in data.gallery) == [0, 3]  # distractor kept, junk dropped
    assert data.query[0].camid == 0 and "train 2 ids, 3 images, 2 cameras" in data.summary()


def test_missing_split_folder_is_explained(tmp_path):
    make_market(tmp_path, {"bounding_box_train": ["0001_c1s1_0_00.jpg"], "query": ["0002_c1s1_0_00.jpg"]})
    with pytest.raises(FileNotFoundError, match="bounding_box_test"):
        load_dataset("duke", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'market'; valid datasets: market1501"):
        load_dataset("market", tmp_path)


def test_cuhk03_np_reads_the_detected_or_labeled_variant(tmp_path):
    for variant, pid in (("detected", 1), ("labeled", 2)):
        make_market(tmp_path / "cuhk03-np" / variant, {
            "bounding_box_train": [f"{pid:04d}_c1_1.png", f"{pid:04d}_c2_2.png"],
            "query": ["0100_c1_1.png"], "bounding_box_test": ["0100_c2_3.png"],
        })
    assert load_dataset("cuhk03", tmp_path, variant="labeled").name == "cuhk03np-labeled"
    assert load_dataset("cuhk03", tmp_path).train[0].path.endswith("0001_c1_1.png")


def test_msmt17_reads_list_files(tmp_path):
    base = tmp_path / "MSMT17_V1"
    lines = {"train": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_001_05_0303noon_0001_0.jpg 1"],
             "val": ["0001/0001_002_07_0303noon_0002_0.jpg 1"],
             "query": ["0100/0100_000_02_0303morning_0001_0.jpg 100"],
             "gallery": ["0100/0100_001_03_0303morning_0002_0.jpg 100"]}
    for split, entries in lines.items():
        (base).mkdir(parents=True, exist_ok=True)
        (base / f"list_{split}.txt").write_text("\n".join(entries) + "\n")
        for entry in entries:
            _img(base / ("train" if split in ("train", "val") else "test") / entry.split()[0])
    data = load_dataset("msmt17", tmp_path)
    assert len(data.train) == 3 and data.num_train_pids == 2
    assert [r.camid for r in data.train] == [0, 4, 6] and data.gallery[0].camid == 2


def _viper_tree(root: Path, ids: int) -> None:
    for pid in range(ids):
        _img(root / "VIPeR" / "cam_a" / f"{pid:03d}_0.bmp")
        _img(root / "VIPeR" / "cam_b" / f"{pid:03d}_90.bmp")


def test_viper_random_splits_are_disjoint_reproducible_and_differ_by_index(tmp_path):
    _viper_tree(tmp_path, 20)
    a, b = load_dataset("viper", tmp_path, split_index=0), load_dataset("viper", tmp_path, split_index=1)
    assert {r.pid for r in a.query} == {r.pid for r in a.gallery}
    assert len({r.pid for r in a.query}) == 10 and a.num_train_pids == 10
    assert {r.camid for r in a.query} == {0} and {r.camid for r in a.gallery} == {1}
    assert {r.pid for r in a.query} != {r.pid for r in b.query}
    assert {r.path for r in a.query} == {r.path for r in load_dataset("viper", tmp_path, split_index=0).query}
    with pytest.raises(ValueError, match="split_index must be in 0..9"):
        load_dataset("viper", tmp_path, split_index=10)


def test_cuhk01_cameras_come_from_the_image_number(tmp_path):
    for pid in range(1, 9):
        for k in range(1, 5):
            _img(tmp_path / "campus" / f"{pid:04d}{k:03d}.png")
    data = load_dataset("cuhk01", tmp_path, num_train_ids=4)
    assert data.num_train_pids == 4 and len(data.query) == len(data.gallery) == 8
    assert {r.camid for r in data.query} == {0}


def test_corrupt_image_error_names_the_file(tmp_path):
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match="cannot read image .*0001_c1s1_000001_00.jpg.*corrupt"):
        read_image(str(bad))


def test_synthetic_generator_writes_a_market_layout_deterministically(tmp_path):
    cfg = SynthConfig(ids=12, cams=3, images_per_cam=2, distractors=5, junk=3, seed=7)
    a = load_dataset("folder", generate(tmp_path / "a", cfg))
    b = load_dataset("folder", generate(tmp_path / "b", cfg))
    assert a.num_train_pids == 6 and {r.pid for r in a.query} <= {r.pid for r in a.gallery}
    assert sum(r.pid == 0 for r in a.gallery) == 5  # distractors kept, junk dropped
    assert len(list((tmp_path / "a" / "bounding_box_test").glob("-1_*"))) == 3
    first = sorted((tmp_path / "a" / "query").iterdir())[0].name
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "query" / first)), np.asarray(Image.open(tmp_path / "b" / "query" / first)))
    assert len(a.train) == len(b.train)


def test_synthetic_cli(tmp_path, capsys):
    from attnas.search.apps.synth_app import main

    main(["--out", str(tmp_path / "s"), "--ids", "8", "--cams", "2", "--seed", "1"])
    assert "synthetic: train 4 ids" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "t"), "--ids", "2"])


def test_identity_sampler_yields_p_ids_times_k_images():
    pids = [i // 3 for i in range(30)] + [99]  # ten ids with 3 images, one with 1 (sampled with replacement)
    sampler = IdentitySampler(pids, p=4, k=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        ids = [pids[i] for i in batch]
        assert len(batch) == 16 and len(set(ids)) == 4 and all(ids.count(p) == 4 for p in set(ids))
    assert batches == list(IdentitySampler(pids, p=4, k=4, seed=0))
    with pytest.raises(ValueError, match="only 11"):
        IdentitySampler(pids, p=12, k=2)


def test_transforms_and_loaders_give_normalised_tensors(tmp_path):
    data = load_dataset("folder", generate(tmp_path, SynthConfig(ids=8, cams=2, images_per_cam=2, distractors=0, junk=0)))
    images, pids, _ = next(iter(train_loader(data.train, 64, 32, p=2, k=2, workers=0)))
    assert images.shape == (4, 3, 64, 32) and len(set(pids.tolist())) == 2
    images, _, camids = next(iter(eval_loader(data.query, 64, 32, batch_size=3, workers=0)))
    assert images.shape == (3, 3, 64, 32) and images.dtype == torch.float32
    torch.testing.assert_close(images[0], build_transforms(64, 32, train=False)(read_image(data.query[0].path)))
    # known answer: a solid colour becomes (value / 255 - ImageNet mean) / ImageNet std per channel
    solid = build_transforms(64, 32, train=False)(Image.new("RGB", (10, 10), (255, 0, 128)))
    expected = [(255 / 255 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert solid.shape == (3, 64, 32)
    for channel, value in enumerate(expected):
        torch.testing.assert_close(solid[channel], torch.full((64, 32), value), atol=1e-5, rtol=0)
    assert len(ImageDataset(data.query, build_transforms(64, 32, False))) == len(data.query)


@pytest.mark.skipif(not (SHARED / "viper").is_dir(), reason="../shared/data not present")
def test_real_viper_and_cuhk01_follow_their_protocols():
    viper = load_dataset("viper", SHARED / "viper")
    assert viper.num_train_pids == 316 and len(viper.query) == len(viper.gallery) == 316
    cuhk01 = load_dataset("cuhk01", SHARED / "cuhk01")
    assert cuhk01.num_train_pids == 485 and len({r.pid for r in cuhk01.query}) == 486
    assert set(DATASETS) >= {"market1501", "duke", "msmt17", "cuhk03", "viper", "cuhk01", "folder", "synthetic"}


def _single_shot(root: Path, ids: int = 30) -> Path:
    """A PRID/VIPeR-like set in the Market layout: two images per person, one per camera."""
    rng = np.random.default_rng(0)
    for split, first in (("bounding_box_train", 1), ("query", 100), ("bounding_box_test", 100)):
        (root / split).mkdir(parents=True)
    for pid in range(1, ids + 1):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        for cam in (1, 2):
            Image.new("RGB", (32, 64), colour).save(root / "bounding_box_train" / f"{pid:04d}_c{cam}s1_000001_00.jpg")
    for pid in range(100, 110):
        Image.new("RGB", (32, 64), (pid, 0, 0)).save(root / "query" / f"{pid:04d}_c1s1_000001_00.jpg")
        Image.new("RGB", (32, 64), (pid, 0, 0)).save(root / "bounding_box_test" / f"{pid:04d}_c2s1_000001_00.jpg")
    return root


def test_single_shot_data_is_validated_across_cameras(tmp_path):
    from attnas.evaluators.reid.validation import carve_validation

    data = load_dataset("folder", _single_shot(tmp_path / "prid"))
    split = carve_validation(data.train, 5, seed=0)
    assert split.protocol == "cross_camera" and len(split.query) == len(split.gallery) == 5
    assert {r.camid for r in split.query} == {0} and {r.camid for r in split.gallery} == {1}
    with pytest.raises(ValueError, match="leaves identity .* without a gallery image from another camera; use protocol cross_camera"):
        carve_validation(data.train, 5, seed=0, protocol="market")
    with pytest.raises(ValueError, match="cannot carve 40 validation ids: 30 training ids are seen by 2\\+ cameras"):
        carve_validation(data.train, 40)


def test_pk_batches_cap_k_at_what_identities_have_instead_of_repeating_images(tmp_path, caplog):
    from attnas.evaluators.reid.training import batch_shape

    data = load_dataset("folder", _single_shot(tmp_path / "prid"))
    with caplog.at_level("WARNING"):
        assert batch_shape(data.train, 8, 4) == (16, 2)  # 32 images a batch, none repeated
    assert "the median identity has 2 image(s): using 16 x 2" in caplog.text
    assert batch_shape(data.train, 8, 2) == (8, 2)
    batch = next(iter(train_loader(data.train, 64, 32, p=16, k=2, workers=0)))
    paths = [data.train[i].path for i in next(iter(IdentitySampler([r.pid for r in data.train], 16, 2)))]
    assert len(batch[0]) == 32 and len(set(paths)) == 32


def test_an_interrupted_generation_leaves_nothing_behind_and_runs_again(tmp_path, monkeypatch):
    import attnas.evaluators.reid.datasets.synthetic as synthetic

    real, cfg = synthetic.render, SynthConfig(ids=6, cams=2, images_per_cam=1, distractors=0, junk=0)
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C half way through
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render", dying)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "synth", cfg)
    assert not (tmp_path / "synth").exists() and not list(tmp_path.glob(".synth.partial-*"))
    monkeypatch.setattr(synthetic, "render", real)
    data = load_dataset("synthetic", generate(tmp_path / "synth", cfg))
    assert data.num_train_pids == 3
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "bounding_box_train").mkdir()  # what an older, interrupted generation left
    with pytest.raises(FileExistsError, match="was not finished by attnas .*delete it or choose another folder"):
        generate(tmp_path / "half", cfg)


@pytest.mark.slow
def test_parallel_jobs_generate_one_folder_once(tmp_path):
    import subprocess
    import sys

    script = ("import logging, sys; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
              "from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate; "
              "generate(sys.argv[1], SynthConfig(ids=20, cams=3, distractors=5, junk=2))")
    jobs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "synth")], stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    logs = [job.communicate(timeout=120)[1] for job in jobs]
    assert all(job.returncode == 0 for job in jobs), logs
    assert sum("making the synthetic data set" in log for log in logs) == 1
    assert load_dataset("synthetic", tmp_path / "synth").num_train_pids == 10


def test_a_missing_root_says_which_setting_and_layout():
    with pytest.raises(ValueError, match="set dataset.root=/path/to/market1501, the folder holding bounding_box_train/, query/"):
        load_dataset("market1501", None)
