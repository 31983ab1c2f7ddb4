"""MSMT17 (V1 or V2): images under `train/` and `test/`, splits given by list files.

`list_train.txt`, `list_val.txt`, `list_query.txt`, `list_gallery.txt`: lines `RELPATH PID`,
file names `0000_000_01_0303morning_0015_0.jpg` with the camera (1-based) in the third field.
torchreid's convention, followed here: train + val together form the training set.
"""

from __future__ import annotations

from pathlib import Path

from attnas.evaluators.reid.datasets.base import ImageRecord, ReIDDataset, require_dir


def _read_list(list_file: Path, image_dir: Path) -> list[ImageRecord]:
    if not list_file.is_file():
        raise FileNotFoundError(f"msmt17: missing list file {str(list_file)!r}")
    records = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            relpath, pid = line.split()
            camid = int(Path(relpath).name.split("_")[2]) - 1
        except (ValueError, IndexError):
            raise ValueError(f"{list_file}:{number}: expected 'RELPATH PID' with MSMT17 file names, got {line!r}") from None
        records.append(ImageRecord(str(image_dir / relpath), int(pid), camid))
    return records


def load_msmt17(root: str | Path) -> ReIDDataset:
    root = Path(root)
    base = next((c for c in (root, root / "MSMT17_V2", root / "MSMT17_V1", root / "msmt17") if (c / "list_train.txt").is_file()), root)
    hint = "MSMT17 has train/, test/ and list_{train,val,query,gallery}.txt"
    train_dir = require_dir(base / ("mask_train_v2" if (base / "mask_train_v2").is_dir() else "train"), "msmt17", hint)
    test_dir = require_dir(base / ("mask_test_v2" if (base / "mask_test_v2").is_dir() else "test"), "msmt17", hint)
    train = _read_list(base / "list_train.txt", train_dir)
    if (base / "list_val.txt").is_file():
        train += _read_list(base / "list_val.txt", train_dir)
    return ReIDDataset(
        "msmt17", train, _read_list(base / "list_query.txt", test_dir), _read_list(base / "list_gallery.txt", test_dir), root=str(base)
    )
