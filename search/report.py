"""The study report: a self-contained HTML dashboard (Plotly, no server, no network) and a
machine-readable summary (JSON + CSV)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from attnas.evaluators.metric_registry import METRICS
from attnas.models.backbones import layout
from attnas.search.analysis import Analysis, StudyView, analyse



def _hover(row, names) -> str:
    metrics = ", ".join(f"{n}={row[n]:.4g}" for n in names)
    return f"{row['spec']}<br>{metrics}<br>trial #{row['number']}{' (reference)' if row['reference'] else ''}"


def front_figure(v: StudyView) -> go.Figure:
    y_name, x_name = v.objectives[0], v.objectives[-1]
    t = v.architectures
    fig = go.Figure()
    for label, mask, symbol in (("feasible", t["feasible"], "circle"), ("infeasible", ~t["feasible"], "x")):
        part = t[mask & ~t["reference"]]
        fig.add_trace(go.Scatter(x=part[x_name], y=part[y_name], mode="markers", name=f"{label} ({len(part)})",
                                 marker=dict(symbol=symbol, size=8, opacity=0.6),
                                 hovertext=[_hover(r, v.objectives) for _, r in part.iterrows()], hoverinfo="text"))
    refs = t[t["reference"]]
    fig.add_trace(go.Scatter(x=refs[x_name], y=refs[y_name], mode="markers+text", name="references",
                             text=refs["spec"], textposition="top center", marker=dict(symbol="diamond", size=11),
                             hovertext=[_hover(r, v.objectives) for _, r in refs.iterrows()], hoverinfo="text"))
    front = v.front.sort_values(x_name)
    fig.add_trace(go.Scatter(x=front[x_name], y=front[y_name], mode="lines+markers", name=f"Pareto front ({len(front)})",
                             line=dict(shape="hv", width=2), marker=dict(size=11, line=dict(width=1)),
                             hovertext=[_hover(r, v.objectives) for _, r in front.iterrows()], hoverinfo="text"))
    fig.update_layout(title=f"{y_name} vs {x_name}: every architecture once", xaxis_title=x_name, yaxis_title=y_name,
                      height=520, legend=dict(orientation="h", y=-0.2))
    return fig


def hypervolume_figure(history: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Scatter(x=history["trial"], y=history["hypervolume"], mode="lines+markers"))
    fig.update_layout(title="hypervolume of the feasible trials so far", xaxis_title="trial", yaxis_title="hypervolume", height=360)
    return fig


def heatmap_figure(a: Analysis) -> go.Figure:
    frame, name = a.position_effects, a.view.objectives[0]
    pos = list(layout(a.view.backbone).positions)
    blocks = list(dict.fromkeys(frame["block"])) if not frame.empty else []
    z = np.full((len(blocks), len(pos)), np.nan)
    text = [["" for _ in pos] for _ in blocks]
    for _, row in frame.iterrows():
        i, j = blocks.index(row["block"]), pos.index(row["where"])
        z[i, j] = row["estimate"]
        text[i][j] = f"{row['estimate']:+.3f} ± {row['stderr']:.3f} (n={row['support']})"
    fig = go.Figure(go.Heatmap(z=z, x=pos, y=blocks, text=text, hoverinfo="x+y+text", colorscale="RdBu",
                               zmid=0, colorbar=dict(title=f"Δ {name}")))
    fig.update_layout(title=f"estimated effect on {name} of each block at each position (additive model)", height=380)
    return fig


def stage_figure(a: Analysis) -> go.Figure:
    frame = a.stage_effects
    fig = go.Figure()
    for name in a.view.objectives:
        part = frame[frame["objective"] == name] if not frame.empty else frame
        if part.empty:
            continue
        fig.add_trace(go.Bar(x=part["feature"], y=part["estimate"], name=name,
                             error_y=dict(type="data", array=part["stderr"])))
    fig.update_layout(title="effect per block type and stage (additive model, ± one standard error)", barmode="group", height=380)
    return fig


def importance_figure(a: Analysis) -> go.Figure | None:
    if a.importances.empty:
        return None
    fig = go.Figure(go.Bar(x=a.importances["importance"], y=a.importances["parameter"], orientation="h"))
    fig.update_layout(title=f"Optuna parameter importances for {a.view.objectives[0]} (sampler parameters)", height=320)
    return fig


_COPY_JS = """
<script>
function copySpec(button) {
  const text = button.getAttribute('data-spec');
  const done = () => { button.textContent = 'copied'; setTimeout(() => button.textContent = 'copy', 1200); };
  if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done, () => fallback(text, done)); }
  else { fallback(text, done); }
}
function fallback(text, done) {
  const area = document.createElement('textarea'); area.value = text; document.body.appendChild(area);
  area.select(); document.execCommand('copy'); document.body.removeChild(area); done();
}
</script>"""


def front_table(v: StudyView) -> str:
    metric_cols = [c for c in METRICS if c in v.front and METRICS[c].direction]
    cols = ["number"] + v.objectives + [c for c in metric_cols if c not in v.objectives]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["spec", *cols, ""])
    rows = []
    for _, row in v.front.iterrows():
        cells = "".join(f"<td>{row[c]:.4g}</td>" if isinstance(row[c], float) else f"<td>{row[c]}</td>" for c in cols)
        spec = html.escape(row["spec"])
        rows.append(f"<tr><td><code>{spec}</code></td>{cells}<td><button data-spec=\"{spec}\" onclick=\"copySpec(this)\">copy</button></td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary(a: Analysis) -> dict:
    v = a.view
    return {
        "study": v.study.study_name,
        "objectives": dict(zip(v.objectives, v.directions)),
        "trials": len(v.study.trials),
        "architectures": len(v.architectures),
        "duplicate_trials": a.duplicate_trials,
        "hypervolume": a.hypervolume,
        "hypervolume_reference": a.reference.tolist(),
        "front": json.loads(v.front.to_json(orient="records")),
        "rules": a.rules,
        "study_user_attrs": v.study.user_attrs,
    }


def write_report(study: optuna.Study, out_dir: str | Path) -> dict[str, Path]:
    a = analyse(study)
    v = a.view
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [front_figure(v), hypervolume_figure(a.history), heatmap_figure(a), stage_figure(a)]
    importance = importance_figure(a)
    if importance is not None:
        figures.append(importance)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig{i}") for i, fig in enumerate(figures)]
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>attnas: {html.escape(study.study_name)}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}</style>{_COPY_JS}</head><body>
<h1>attnas study <code>{html.escape(study.study_name)}</code></h1>
<p>{len(study.trials)} trials, {len(v.architectures)} distinct architectures ({a.duplicate_trials} re-proposals counted once),
{len(v.front)} on the Pareto front; hypervolume {a.hypervolume:.4g} (reference point {np.round(a.reference, 4).tolist()}).</p>
<h2>Placement rules</h2><ul>{''.join(f'<li>{html.escape(r)}</li>' for r in a.rules)}</ul>
{parts[0]}<h2>Pareto front</h2>{front_table(v)}{''.join(parts[1:])}</body></html>"""
    paths = {"html": out / "dashboard.html", "json": out / "summary.json", "front_csv": out / "front.csv",
             "architectures_csv": out / "architectures.csv"}
    paths["html"].write_text(page)
    paths["json"].write_text(json.dumps(summary(a), indent=2, default=str) + "\n")
    v.front.to_csv(paths["front_csv"], index=False)
    v.architectures.to_csv(paths["architectures_csv"], index=False)
    return paths
