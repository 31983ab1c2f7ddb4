"""`attnas-synth --out FOLDER`: write a synthetic re-ID set in the Market-1501 layout.

    attnas-synth --out data/my-synth --ids 300 --cams 4 --seed 0

The generator is `attnas.evaluators.reid.datasets.synthetic`; importing it imports torch (through
the evaluators package), seconds before `--help` could answer. So the defaults a user sees are
written here, and `tests/test_help.py` holds them equal to `SynthConfig`'s.
"""

from __future__ import annotations

import argparse
import logging

#: SynthConfig's defaults of the knobs on the command line (a test holds them equal)
DEFAULTS = {"ids": 300, "cams": 4, "images_per_cam": 3, "seed": 0, "occlusion": 0.3, "shade": 18.0, "camera_cast": 0.25}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnas-synth", description="Write a synthetic re-ID set in the Market-1501 "
                                     "layout (bounding_box_train/, query/, bounding_box_test/).")
    parser.add_argument("--out", required=True, help="the folder to write (kept when it is already complete)")
    parser.add_argument("--ids", type=int, default=DEFAULTS["ids"], help="identities, half for training (default: %(default)s)")
    parser.add_argument("--cams", type=int, default=DEFAULTS["cams"], help="cameras (default: %(default)s)")
    parser.add_argument("--images-per-cam", type=int, default=DEFAULTS["images_per_cam"],
                        help="images per identity and camera (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="(default: %(default)s)")
    parser.add_argument("--occlusion", type=float, default=DEFAULTS["occlusion"],
                        help="probability of an occluder in an image (default: %(default)s)")
    parser.add_argument("--shade", type=float, default=DEFAULTS["shade"],
                        help="per-identity colour offset: how alike identities sharing a colour are (default: %(default)s)")
    parser.add_argument("--camera-cast", type=float, default=DEFAULTS["camera_cast"],
                        help="per-camera colour gain spread (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the generator's progress, on a terminal or not
    from attnas.evaluators.reid.datasets.market import load_market_layout
    from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate

    cfg = SynthConfig(ids=args.ids, cams=args.cams, images_per_cam=args.images_per_cam, seed=args.seed,
                      occlusion=args.occlusion, shade=args.shade, camera_cast=args.camera_cast)
    try:
        root = generate(args.out, cfg)
    except (ValueError, FileExistsError) as error:
        parser().error(str(error))
    print(load_market_layout(root, "synthetic").summary())


if __name__ == "__main__":
    main()
