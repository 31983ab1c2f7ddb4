"""Export the chosen architecture: its spec with metrics and provenance, and on request the model
(state_dict, TorchScript, ONNX), each verified by rebuilding from the spec and comparing outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
import yaml

from attnas.models import build_model
from attnas.search.analysis import StudyView, view
from attnas.space import ArchSpec

_BOUND = re.compile(r"^(?P<metric>\w+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+0-9.eE]+)$")


def load_study(storage: str, study_name: str) -> optuna.Study:
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as error:  # noqa: BLE001 - any storage error means the URL is unusable
        raise ValueError(f"cannot open storage {storage!r}: {error}") from None
    if study_name not in names:
        raise ValueError(f"no study {study_name!r} in {storage}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=storage)


def knee(front: pd.DataFrame, objectives: list[str], directions: list[str]) -> int:
    """Front member farthest from the line between the two extremes (normalised objectives)."""
    if len(front) <= 2:
        return int(front.index[0])
    values = front[objectives[:2]].to_numpy(dtype=float)
    loss = np.where(np.array(directions[:2]) == "maximize", -values, values)
    span = np.ptp(loss, axis=0)
    loss = (loss - loss.min(axis=0)) / np.where(span > 0, span, 1)
    a, b = loss[np.argmin(loss[:, 0])], loss[np.argmin(loss[:, 1])]
    direction = (b - a) / (np.linalg.norm(b - a) or 1)
    offsets = loss - a
    distance = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    return int(front.index[int(np.argmax(distance))])


def pick(v: StudyView, rule: str) -> pd.Series:
    """`knee`, `max_map` (best first objective), or a bound such as `latency<=1.05` (best first
    objective among feasible architectures meeting it; `latency` means `latency_ratio`)."""
    front, first = v.front, v.objectives[0]
    if front.empty:
        raise ValueError(f"study {v.study.study_name!r} has no feasible architecture on its front; relax the constraints "
                         f"or pick by a bound, e.g. pick='latency<=1.2'")
    ascending = v.directions[0] == "minimize"
    if rule == "knee":
        return front.loc[knee(front, v.objectives, v.directions)]
    if rule in ("max_map", f"best_{first}"):
        return front.sort_values(first, ascending=ascending).iloc[0]
    match = _BOUND.match(rule.replace(" ", ""))
    if match is None:
        raise ValueError(f"unknown pick {rule!r}; use knee, max_map, or METRIC<=VALUE such as latency<=1.05")
    metric = "latency_ratio" if match["metric"] == "latency" else match["metric"]
    table = v.architectures[v.architectures["feasible"]]
    if metric not in table:
        raise ValueError(f"pick {rule!r} names {metric!r}, which the study does not record; recorded: "
                         f"{', '.join(c for c in table.columns if table[c].dtype.kind == 'f')}")
    ops = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}
    chosen = table[ops[match["op"]](table[metric], float(match["value"]))]
    if chosen.empty:
        raise ValueError(f"no feasible architecture has {metric} {match['op']} {match['value']}; the range seen is "
                         f"{table[metric].min():.4g}..{table[metric].max():.4g}")
    return chosen.sort_values(first, ascending=ascending).iloc[0]


_BOOKKEEPING = ("spec", "number", "num_blocks", "feasible", "on_front", "reference", "times_proposed")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def export_spec(study: optuna.Study, rule: str, out_dir: str | Path, storage: str = "") -> tuple[ArchSpec, dict]:
    v = view(study)
    row = pick(v, rule)
    spec = ArchSpec.parse(row["spec"])
    record = {
        "spec": str(spec),
        **spec.to_dict(),
        "metrics": {k: _plain(row[k]) for k in row.index if k not in _BOOKKEEPING and not pd.isna(row[k])},
        "status": {k: _plain(row[k]) for k in ("feasible", "on_front", "reference", "times_proposed") if k in row.index},
        "provenance": {"study": study.study_name, "storage": storage, "trial": int(row["number"]), "pick": rule,
                       "objectives": dict(zip(v.objectives, v.directions)), "config": study.user_attrs},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "architecture.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "architecture.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(record, default=str)), sort_keys=False))
    return spec, record


def _outputs_equal(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-4):
        raise RuntimeError(f"{what}: outputs differ from the model rebuilt from the spec (max |diff| {(a - b).abs().max():.3g})")


@torch.no_grad()
def export_model(spec: ArchSpec, out_dir: str | Path, num_classes: int = 1, weights: str | None = None,
                 input_size: tuple[int, int] = (256, 128), formats: tuple[str, ...] = ("state_dict", "torchscript", "onnx")) -> dict[str, str]:
    """Write the model in each format and check each against a fresh build from the spec."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(spec, num_classes)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        num_classes = state["head.classifier.weight"].shape[0]
        model = build_model(spec, num_classes)
        model.load_state_dict(state)
    model.eval()
    x = torch.randn(2, 3, *input_size)
    expected = model(x)
    written: dict[str, str] = {}
    path = out / "model_state_dict.pt"
    torch.save(model.state_dict(), path)
    rebuilt = build_model(spec, num_classes)
    rebuilt.load_state_dict(torch.load(path, weights_only=True))
    _outputs_equal(rebuilt.eval()(x), expected, "state_dict")
    written["state_dict"] = str(path)
    if "torchscript" in formats:
        path = out / "model.torchscript.pt"
        torch.jit.save(torch.jit.trace(model, x), path)
        _outputs_equal(torch.jit.load(path)(x), expected, "TorchScript")
        written["torchscript"] = str(path)
    if "onnx" in formats:
        try:
            import onnx  # noqa: F401
            import onnxruntime
        except ImportError:
            written["onnx"] = "skipped: pip install onnx onnxruntime to export ONNX"
        else:
            path = out / "model.onnx"
            torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["embedding"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            _outputs_equal(torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), expected, "ONNX")
            written["onnx"] = str(path)
    return written
