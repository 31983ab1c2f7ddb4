"""The exported model: state_dict, TorchScript and ONNX, each checked against a fresh build from
the spec, each written atomically (a killed export never leaves a truncated file under its final
name).

Weights are checked before anything is written: the `spec.yaml` that `attnas-train` writes beside
its weights must name the exported spec, and the state_dict must fit it. Exporting random
weights takes an explicit `untrained=true`, and then every file name says `untrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attnas.evaluators.artefacts import atomic_write
from attnas.models import build_model
from attnas.models.weights import read_weights
from attnas.space import ArchSpec
from attnas.models import INPUT_SIZE

#: what the exported network returns, for whoever deploys it
EMBEDDING = ("eval() returns the BNNeck embedding (the global-average-pooled last feature map after BatchNorm1d), "
             "not L2-normalised; attnas ranks with the cosine distance, so L2-normalise it before a dot product")


def _outputs_equal(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-4):
        raise RuntimeError(f"{what}: outputs differ from the model rebuilt from the spec (max |diff| {(a - b).abs().max():.3g})")


def check_weights(spec: ArchSpec, weights: str | None, untrained: bool = False) -> dict[str, torch.Tensor] | None:
    """The state_dict to export, refused in one line when it is not `spec`'s."""
    if weights is None:
        if not untrained:
            raise ValueError("model=true needs weights=PATH (the model.pt attnas-train wrote for this architecture); "
                             "untrained=true exports random weights instead, marked untrained in every file name")
        return None
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"no weights file at {str(path)!r}")
    beside = path.with_name("spec.yaml")
    if beside.exists():
        trained_for = ArchSpec.load(beside)
        if trained_for != spec:
            raise ValueError(f"the weights at {str(path)!r} were trained for {trained_for} ({beside}), not for the picked "
                             f"{spec}; train the picked architecture (attnas-train) or pick the one the weights belong to")
    state = read_weights(path)  # weights_only: a file that would run code is refused in one line
    if not isinstance(state, dict) or "head.classifier.weight" not in state:
        raise ValueError(f"{str(path)!r} is not an attnas model's state_dict (no head.classifier.weight); use attnas-train's model.pt")
    model = build_model(spec, state["head.classifier.weight"].shape[0])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"the weights at {str(path)!r} do not fit {spec}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return state


@torch.no_grad()
def export_model(spec: ArchSpec, out_dir: str | Path, weights: str | None = None, untrained: bool = False,
                 input_size: tuple[int, int] = INPUT_SIZE, formats: tuple[str, ...] = ("state_dict", "torchscript", "onnx"),
                 state: dict[str, torch.Tensor] | None = None) -> dict[str, str]:
    """Write the model in each format and check each against a fresh build from the spec."""
    state = state if state is not None else check_weights(spec, weights, untrained)
    num_classes = state["head.classifier.weight"].shape[0] if state is not None else 1
    model = build_model(spec, num_classes)
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    tag = "model_untrained" if state is None else "model"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = torch.randn(2, 3, *input_size)
    expected = model(x)
    written: dict[str, str] = {}
    path = out / f"{tag}_state_dict.pt"
    atomic_write(path, lambda p: torch.save(model.state_dict(), p))
    rebuilt = build_model(spec, num_classes)
    rebuilt.load_state_dict(torch.load(path, weights_only=True))
    _outputs_equal(rebuilt.eval()(x), expected, "state_dict")
    written["state_dict"] = str(path)
    if "torchscript" in formats:
        path = out / f"{tag}.torchscript.pt"
        atomic_write(path, lambda p: torch.jit.save(torch.jit.trace(model, x), p))
        _outputs_equal(torch.jit.load(path)(x), expected, "TorchScript")
        written["torchscript"] = str(path)
    if "onnx" in formats:
        try:
            import onnx  # noqa: F401
            import onnxruntime
        except ImportError:
            written["onnx"] = "skipped: pip install onnx onnxruntime to export ONNX"
        else:
            path = out / f"{tag}.onnx"
            # one self-contained file (weights inside, no model.onnx.data beside it): fine under ONNX's 2 GB
            atomic_write(path, lambda p: torch.onnx.export(
                model, (x,), str(p), input_names=["images"], output_names=["embedding"], external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},)))
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            _outputs_equal(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), expected, "ONNX")
            written["onnx"] = str(path)
    return written
