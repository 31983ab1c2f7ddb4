"""What the training loop costs over the bare step: images per second of `train()` against the model's
own forward + loss + backward + Adam step on a batch already on the device, same batch, same device.

The bare step is what the hardware can do; the loop adds data loading (decoding or the decoded-image
cache, augmentation, collation, the copy to the device), the learning-rate schedule, the device lock,
the progress bookkeeping and its host syncs. `overhead` is bare images/s over loop images/s, minus 1,
from adjacent (bare, loop) pairs; the line gives its median and the range over `--repeats` pairs.
On CUDA, `gpu_busy` is the GPU time of a bare step (CUDA events) times the loop's steps, over the
loop's wall time: the share of the time the loop keeps the GPU working. Goals (issue 22): overhead
at most 10% on a CPU, at least 90% GPU busy for ResNet-50 at 256x128, batch 64.

Variants: `cached` (the default loop: the set decoded once in memory, loader workers from the CPUs
this process may use), `disk` (cache off: every image read and decoded per step), `workers0`
(cached, augmentation in the training process). The data are a synthetic set (`attnas-synth`,
128 x 64 images resized to the case's size), generated once into data/bench-train-throughput.
Seed 0 throughout. Each case runs the loop for `--warmup` + `--steps` steps and times the last
`--steps` (loader start and first steps excluded, as for the bare step).

    python -m bench.train_throughput                                  # CPU: ResNet-50 64x32 and 128x64, batch 32
    python -m bench.train_throughput --cases cuda_256x128             # GPU: ResNet-50 256x128, batch 64, bf16
    python -m bench.train_throughput --cases cpu_64x32 --steps 2 --warmup 1 --repeats 1 --backbone resnet18  # smoke
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from attnas.evaluators.reid import image_cache
from attnas.evaluators.reid.data import default_workers
from attnas.evaluators.reid.datasets import load_dataset
from attnas.evaluators.reid.datasets.base import relabel
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from attnas.evaluators.reid.losses import batch_hard_triplet_loss, id_loss
from attnas.evaluators.reid.training import TrainConfig, autocast_dtype, memory_format, train
from attnas.models import build_model


@dataclass(frozen=True)
class Case:
    device: str
    height: int
    width: int
    p: int
    k: int
    options: tuple[tuple[str, object], ...] = ()  # TrainConfig settings of the case (CUDA speed options)


CASES = {
    "cpu_64x32": Case("cpu", 64, 32, 8, 4),
    "cpu_128x64": Case("cpu", 128, 64, 8, 4),
    "cuda_256x128": Case("cuda", 256, 128, 16, 4, (("amp_dtype", "bf16"), ("channels_last", True))),
}
VARIANTS = {"cached": {}, "disk": {"cache_mb": 0}, "workers0": {"workers": 0}}


def config(case: Case, variant: str, steps: int) -> TrainConfig:
    return TrainConfig(height=case.height, width=case.width, epochs=1, steps_per_epoch=steps, p=case.p, k=case.k,
                       lr=1e-4, warmup_epochs=0, schedule="cosine", device=case.device, random_erasing=0.5,
                       **dict(case.options), **VARIANTS[variant])


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_step_rate(backbone: str, classes: int, cfg: TrainConfig, warmup: int, steps: int) -> tuple[float, float | None]:
    """(images/s, GPU ms per step by CUDA events or None) of forward + loss + backward + Adam on one
    batch that is already on the device."""
    device = torch.device(cfg.device)
    memory, dtype = memory_format(cfg, device), autocast_dtype(cfg, device)
    torch.manual_seed(0)
    model = build_model(backbone, classes).to(device, memory_format=memory).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    batch = cfg.p * cfg.k
    images = torch.randn(batch, 3, cfg.height, cfg.width, device=device).contiguous(memory_format=memory)
    targets = torch.arange(cfg.p, device=device).repeat_interleave(cfg.k)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if device.type == "cuda" else None
    with torch.backends.cudnn.flags(enabled=True, benchmark=cfg.cudnn_benchmark):
        for step in range(warmup + steps):
            if step == warmup:
                synchronize(cfg.device)
                started = time.perf_counter()
                if events:
                    events[0].record()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits, features = model(images)
                loss = id_loss(logits, targets, cfg.label_smoothing) + batch_hard_triplet_loss(features.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if events:
            events[1].record()
        synchronize(cfg.device)
    seconds = time.perf_counter() - started
    gpu_ms = events[0].elapsed_time(events[1]) / steps if events else None
    return steps * batch / seconds, gpu_ms


def loop_rate(backbone: str, records, cfg: TrainConfig, warmup: int) -> float:
    """Images/s of `train()` over its steps after the first `warmup` (from the step's start to the
    end of the training, whose last loss read waits for the device)."""
    stamps: list[float] = []
    ended: list[float] = []
    torch.manual_seed(0)
    model = build_model(backbone, len({r.pid for r in records}))
    train(model, records, cfg, before_batch=lambda: stamps.append(time.perf_counter()),
          on_epoch=lambda epoch, _: ended.append(time.perf_counter()))
    timed = cfg.steps_per_epoch - warmup
    return timed * cfg.p * cfg.k / (ended[-1] - stamps[warmup])


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    shown = [v * scale for v in values]
    middle = fmt.format(statistics.median(shown))
    return middle if len(shown) == 1 else f"{middle} ({fmt.format(min(shown))}..{fmt.format(max(shown))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cpu_64x32,cpu_128x64", help=f"any of {', '.join(CASES)}")
    parser.add_argument("--variants", default="cached,disk,workers0", help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=3, help="(bare, loop) pairs per variant")
    parser.add_argument("--data", default="data/bench-train-throughput")
    args = parser.parse_args()
    root = generate(args.data, SynthConfig(ids=128, cams=4, images_per_cam=3, distractors=0, junk=0, seed=0))
    records = relabel(load_dataset("synthetic", root).train)
    print(f"# {len(records)} training images of {len({r.pid for r in records})} ids; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, default loader workers {default_workers()}, seed 0", flush=True)
    for name in args.cases.split(","):
        case = CASES[name]
        if case.device == "cuda" and not torch.cuda.is_available():
            print(f"case={name} skipped: CUDA is not available on this machine", flush=True)
            continue
        for variant in args.variants.split(","):
            cfg = config(case, variant, args.warmup + args.steps)
            bare, loop, busy = [], [], []
            for _ in range(args.repeats):  # interleaved, so a drift of the machine hits both alike
                image_cache.clear()
                ips, gpu_ms = bare_step_rate(args.backbone, len({r.pid for r in records}), cfg, args.warmup, args.steps)
                bare.append(ips)
                loop.append(loop_rate(args.backbone, records, cfg, args.warmup))
                if gpu_ms is not None:
                    busy.append(gpu_ms / 1000 * loop[-1] / (cfg.p * cfg.k))  # GPU seconds a step x loop steps a second
            overhead = [b / lo - 1 for b, lo in zip(bare, loop)]
            workers = cfg.workers if cfg.workers is not None else default_workers()
            line = (f"case={name} backbone={args.backbone} batch={cfg.p * cfg.k} device={case.device} variant={variant} "
                    f"workers={workers} repeats={args.repeats} steps={args.steps} bare_ips={spread(bare)} "
                    f"loop_ips={spread(loop)} overhead={spread(overhead, 100, '{:+.1f}')}%")
            if busy:
                line += f" gpu_busy={spread(busy, 100, '{:.0f}')}%"
            print(line, flush=True)


if __name__ == "__main__":
    main()
