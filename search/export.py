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
from attnas.evaluators.metric_registry import METRICS
from attnas.search.analysis import StudyView, Verdict, pareto_mask, verdict, view
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


class InsignificantError(ValueError):
    """No candidate beats the plain backbone beyond seed noise; the message is the verdict."""


def pick(v: StudyView, rule: str, min_gain_se: float = 2.0, allow_insignificant: bool = False) -> tuple[pd.Series, Verdict]:
    """`knee`, `max_map` (best first objective), or a bound such as `latency<=1.05` (best first
    objective among feasible architectures meeting it; `latency` means `latency_ratio`).

    Only architectures whose gain over the plain backbone on the accuracy objective exceeds
    `min_gain_se` standard errors of the difference are considered (studies whose objectives
    do not depend on the seed have nothing to test). When none does, `InsignificantError` says
    so, unless `allow_insignificant`: then every feasible architecture is considered and the
    verdict goes with the export."""
    judged = verdict(v, min_gain_se)
    first, ascending = v.objectives[0], v.directions[0] == "minimize"
    table = v.architectures[v.architectures["feasible"]]
    if table.empty:
        raise ValueError(f"study {v.study.study_name!r} has no feasible architecture; relax the constraints")
    if judged.objective is not None:
        pool = table[table["spec"].isin(judged.significant)]
        if pool.empty:
            if not allow_insignificant:
                raise InsignificantError(judged.sentence() + "; allow_insignificant=true exports anyway, with this verdict")
            pool = table
    else:
        pool = table
    if rule == "knee":
        front = pool[pareto_mask(pool[v.objectives].to_numpy(dtype=float), v.directions)]
        front = front.sort_values(first, ascending=ascending)
        return front.loc[knee(front, v.objectives, v.directions)], judged
    if rule in ("max_map", f"best_{first}"):
        return pool.sort_values(first, ascending=ascending).iloc[0], judged
    match = _BOUND.match(rule.replace(" ", ""))
    if match is None:
        raise ValueError(f"unknown pick {rule!r}; use knee, max_map, or METRIC<=VALUE such as latency<=1.05")
    name = "latency_ratio" if match["metric"] == "latency" else match["metric"]
    if name not in pool:
        recorded = [m for m in METRICS if m in pool]
        raise ValueError(f"pick {rule!r} names {name!r}, which the study does not record; recorded: {', '.join(recorded)}")
    ops = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}
    chosen = pool[ops[match["op"]](pool[name], float(match["value"]))]
    if chosen.empty:
        raise ValueError(f"no {'feasible' if pool is table else 'significant'} architecture has {name} {match['op']} "
                         f"{match['value']}; the range seen is {pool[name].min():.4g}..{pool[name].max():.4g}")
    return chosen.sort_values(first, ascending=ascending).iloc[0], judged


_BOOKKEEPING = ("spec", "number", "num_blocks", "seeds", "feasible", "on_front", "p_front", "reference", "times_proposed",
                "gain", "gain_se", "gain_z")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def export_spec(study: optuna.Study, rule: str, out_dir: str | Path, storage: str = "", min_gain_se: float = 2.0,
                allow_insignificant: bool = False) -> tuple[ArchSpec, dict]:
    v = view(study)
    row, judged = pick(v, rule, min_gain_se, allow_insignificant)
    spec = ArchSpec.parse(row["spec"])
    significant = row["spec"] in judged.significant
    record = {
        "spec": str(spec),
        **spec.to_dict(),
        "metrics": {k: _plain(row[k]) for k in row.index
                    if k not in _BOOKKEEPING and not k.endswith(("_lo", "_hi")) and not pd.isna(row[k])},
        "uncertainty": {"seeds": int(row["seeds"]), "p_front": _plain(row["p_front"]),
                        "intervals_95": {o: [_plain(row[f"{o}_lo"]), _plain(row[f"{o}_hi"])] for o in v.objectives},
                        "noise_floor": {k: f.to_dict() for k, f in v.noise_floor.items()}},
        "verdict": {"significant": bool(significant) if judged.objective else None, "objective": judged.objective,
                    "versus": judged.plain, "gain": _plain(row["gain"]), "gain_se": _plain(row["gain_se"]),
                    "min_gain_se": min_gain_se, "study": judged.sentence()},
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
