"""`attnas-cost SPEC [SPEC ...]`: latency ratio, FLOPs and params of specs, without training."""

from __future__ import annotations

import argparse

DEMO_SPECS = ["resnet50", "resnet50:layer3.5=cnl", "resnet50:layer2.3=se,layer3.5=cnl,layer4.0=cnl", "resnet50:layer1.2=nl", "resnet101"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnas-cost", description=__doc__)
    parser.add_argument("specs", nargs="*", default=DEMO_SPECS, help="architecture specs, e.g. resnet50:layer3.5=cnl")
    parser.add_argument("--baseline", default="resnet50", help="spec the latency ratio is taken against")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runtime", default="eager", help="the runtime the model is deployed on: eager, onnxruntime, tensorrt")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16")
    args = parser.parse_args(argv)
    import torch  # after the arguments: --help answers without it

    from attnas.evaluators.cost import model_cost
    from attnas.evaluators.device import check_device
    from attnas.evaluators.latency.runtimes import check_runtime
    from attnas.evaluators.latency.timing import LatencyConfig, measure_latency_ratio
    from attnas.models import build_model
    from attnas.space import ArchSpec

    try:
        specs = [ArchSpec.parse(text) for text in args.specs]
        baseline_spec = ArchSpec.parse(args.baseline)
    except ValueError as error:
        parser.error(str(error))
    for name in ("repeats", "batch_size", "height", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        check_device(args.device, "--device")
        check_runtime(args.runtime, args.precision, args.device)
    except ValueError as error:
        parser.error(str(error))
    cfg = LatencyConfig(device=args.device, threads=args.threads, batch_size=args.batch_size,
                        input_size=(args.height, args.width), repeats=args.repeats, runtime=args.runtime,
                        precision=args.precision)
    baseline = build_model(baseline_spec, num_classes=1)
    print(f"# latency ratio vs {baseline_spec}, {cfg.device}, {cfg.runtime} {cfg.precision}, threads={torch.get_num_threads()}, "
          f"batch {cfg.batch_size}, input {cfg.input_size[0]}x{cfg.input_size[1]}")
    for spec in specs:
        model = build_model(spec, num_classes=1)
        timing = measure_latency_ratio(model, baseline, cfg)
        cost = model_cost(model, cfg.input_size)
        print(f"{str(spec):<50} ratio={timing.ratio:.3f} ms={timing.model.median_ms:.1f} "
              f"(p90 {timing.model.p90_ms:.1f}) gflops={cost.gflops:.2f} params_m={cost.backbone_params_m:.2f}")


if __name__ == "__main__":
    main()
