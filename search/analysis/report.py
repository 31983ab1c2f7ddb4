"""The study report: a self-contained HTML dashboard (Plotly, no server, no network) and a
machine-readable summary (JSON + CSV). Everything here draws what `analysis` computed; every
number shown carries its uncertainty (95% intervals, the probability of being on the front,
the study's seed noise) and the verdict says whether any candidate beats the plain backbone
beyond that noise."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from attnas.evaluators.artefacts import atomic_write, atomic_write_text
from attnas.evaluators.metric_registry import METRICS
from attnas.evaluators.latency.profile import LatencyProfile
from attnas.models.backbones import layout
from attnas.search.analysis.evidence_box import confirmation_table, evidence_lines, evidence_summary
from attnas.search.analysis.view import Analysis, StudyView, analyse
from attnas.search.analysis.stages import stage_comparison


def _text(value) -> str:
    """A stored value as text for HTML, Plotly labels included (Plotly renders a few tags in
    them): every study, spec, metric and objective name comes from a storage anyone may write."""
    return html.escape(str(value))


def _hover(row, names) -> str:
    metrics = ", ".join(f"{_text(n)}={row[n]:.4g}" + (f" [{row[f'{n}_lo']:.4g}, {row[f'{n}_hi']:.4g}]"
                                                      if row[f"{n}_hi"] != row[f"{n}_lo"] else "") for n in names)
    return (f"{_text(row['spec'])}<br>{metrics}<br>P(on front)={row['p_front']:.2f}, {row['seeds']} seed(s)<br>"
            f"trial #{row['number']}{' (reference)' if row['reference'] else ''}")


def _errors(frame: pd.DataFrame, name: str) -> dict:
    """Error bars of the 95% intervals; none at all for an exact quantity (FLOPs, parameters)."""
    half = ((frame[f"{name}_hi"] - frame[f"{name}_lo"]) / 2).fillna(0)
    return dict(type="data", array=half.tolist(), visible=bool((half > 0).any()), thickness=1)


def front_figure(v: StudyView) -> go.Figure:
    """Every architecture once, with 95% error bars, coloured by its probability of being on the front."""
    y_name, x_name = v.objectives[0], v.objectives[-1]
    t = v.architectures
    fig = go.Figure()
    unreliable = t["latency_unreliable"].fillna(0).astype(bool) if "latency_unreliable" in t else pd.Series(False, index=t.index)
    for label, mask, symbol in (("feasible", t["feasible"], "circle"), ("infeasible", ~t["feasible"], "x")):
        part = t[mask]
        flagged = unreliable[mask]  # a red ring: the timing looked disturbed even after its retries
        fig.add_trace(go.Scatter(
            x=part[x_name], y=part[y_name], mode="markers", name=f"{label} ({len(part)})",
            error_x=_errors(part, x_name), error_y=_errors(part, y_name),
            marker=dict(symbol=symbol, size=9, color=part["p_front"], colorscale="Viridis", cmin=0, cmax=1,
                        showscale=label == "feasible", colorbar=dict(title="P(on front)", x=1.02),
                        line=dict(color=["red" if f else "black" for f in flagged], width=[3 if f else 0.5 for f in flagged])),
            hovertext=[_hover(r, v.objectives) for _, r in part.iterrows()], hoverinfo="text"))
    refs = t[t["reference"]]
    fig.add_trace(go.Scatter(x=refs[x_name], y=refs[y_name], mode="markers+text", name="references", text=[_text(s) for s in refs["spec"]],
                             textposition="top center", marker=dict(symbol="diamond-open", size=14, color="black"),
                             hoverinfo="skip"))
    front = v.front.sort_values(x_name)
    fig.add_trace(go.Scatter(x=front[x_name], y=front[y_name], mode="lines", name=f"Pareto front of the means ({len(front)})",
                             line=dict(shape="hv", width=2, color="gray"), hoverinfo="skip"))
    fig.update_layout(title=f"{_text(y_name)} vs {_text(x_name)}: every architecture once, 95% intervals",
                      xaxis_title=_text(x_name), yaxis_title=_text(y_name), height=540, legend=dict(orientation="h", y=-0.2))
    return fig


def hypervolume_figure(history: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Scatter(x=history["trial"], y=history["hypervolume"], mode="lines+markers"))
    fig.update_layout(title="hypervolume of the feasible trials so far (point estimates)", xaxis_title="trial",
                      yaxis_title="hypervolume", height=340)
    return fig


def heatmap_figure(a: Analysis) -> go.Figure:
    name = a.view.objectives[0]
    frame = a.position_effects[a.position_effects["objective"] == name] if not a.position_effects.empty else a.position_effects
    pos = list(layout(a.view.backbone).positions)
    blocks = list(dict.fromkeys(frame["block"])) if not frame.empty else []
    z = np.full((len(blocks), len(pos)), np.nan)
    text = [["" for _ in pos] for _ in blocks]
    for _, row in frame.iterrows():
        i, j = blocks.index(row["block"]), pos.index(row["where"])
        z[i, j] = row["estimate"] if row["finding"] else 0.0  # only effects the study can tell from noise get colour
        text[i][j] = (f"{row['estimate']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}] (n={row['support']})"
                      f"{'' if row['finding'] else ' not distinguishable from noise'}")
    fig = go.Figure(go.Heatmap(z=z, x=pos, y=[_text(b) for b in blocks], text=text, hoverinfo="x+y+text", colorscale="RdBu",
                               zmid=0, colorbar=dict(title=f"Δ {_text(name)}")))
    fig.update_layout(title=f"effect on {_text(name)} of each block at each position (coloured only where the 95% interval "
                            f"excludes zero; hover for all)", height=380)
    return fig


def stage_figure(a: Analysis) -> go.Figure:
    frame = a.stage_effects
    fig = go.Figure()
    for name in a.view.objectives:
        part = frame[frame["objective"] == name] if not frame.empty else frame
        if part.empty:
            continue
        fig.add_trace(go.Bar(x=[_text(f) for f in part["feature"]], y=part["estimate"], name=_text(name),
                             error_y=dict(type="data", symmetric=False, array=(part["hi"] - part["estimate"]).fillna(0),
                                          arrayminus=(part["estimate"] - part["lo"]).fillna(0))))
    fig.update_layout(title="effect per block type and stage (additive model; intervals at the false-coverage level of each "
                            "objective's effects)", barmode="group",
                      height=380)
    return fig


def importance_figure(a: Analysis) -> go.Figure | None:
    frame = a.importances
    if frame.empty:
        return None
    positions = [_text(p) for p in frame["parameter"]]
    fig = go.Figure(go.Bar(x=frame["importance"], y=positions, orientation="h", name="share explained",
                           error_x=dict(type="data", symmetric=False, array=frame["hi"] - frame["importance"],
                                        arrayminus=frame["importance"] - frame["lo"]),
                           marker=dict(color=["steelblue" if d else "lightgray" for d in frame["distinguishable"]])))
    fig.add_trace(go.Scatter(x=frame["chance"], y=positions, mode="markers", name="chance level (no effect)",
                             marker=dict(symbol="line-ns-open", size=14, color="red")))
    fig.update_layout(title=f"share of the variance of {_text(a.view.objectives[0])} explained by what sits at each position, "
                            f"90% bootstrap intervals; grey: not distinguishable from its chance level", height=320)
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


def _cell(row, name: str) -> str:
    lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
    if lo is not None and pd.notna(lo) and hi != lo:
        return f"<td>{row[name]:.4g} <small>[{lo:.4g}, {hi:.4g}]</small></td>"
    return f"<td>{row[name]:.4g}</td>" if isinstance(row[name], float) else f"<td>{_text(row[name])}</td>"


def front_table(v: StudyView) -> str:
    """The front of the means, plus any architecture with a fair chance (>= 20%) of being on it."""
    rows = v.architectures[v.architectures["on_front"] | (v.architectures["p_front"] >= 0.2)]
    rows = rows.sort_values(["p_front", v.objectives[0]], ascending=[False, v.directions[0] == "minimize"])
    extra = [c for c in METRICS if c in rows and METRICS[c].direction and c not in v.objectives][:4]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["spec", *v.objectives, "P(on front)", "seeds",
                                                           "gain vs plain, same seeds (z)", *extra, ""])
    body = []
    for _, row in rows.iterrows():
        spec = html.escape(row["spec"])
        gain = "" if pd.isna(row["gain_z"]) else f"{row['gain']:+.4g} ({row['gain_z']:+.1f})"
        cells = "".join(_cell(row, n) for n in v.objectives) + f"<td>{row['p_front']:.2f}</td><td>{row['seeds']}</td>"
        cells += f"<td>{gain}</td>" + "".join(_cell(row, c) for c in extra)
        body.append(f"<tr><td><code>{spec}</code></td>{cells}<td><button data-spec=\"{spec}\" "
                    f"onclick=\"copySpec(this)\">copy</button></td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def evidence(a: Analysis) -> str:
    """The noise floor, the validation split, the verdict and its confirmation, in words."""
    return "".join(f"<li>{html.escape(line)}</li>" for line in evidence_lines(a))


def stages_html(study: optuna.Study) -> str:
    """For a finalists study: how the stand-alone evaluation re-ranked the one-shot shortlist."""
    try:
        compared = stage_comparison(study)
    except KeyError:  # the first stage's study is not (or no longer) in this storage
        return (f"<h2>Two stages</h2><p>Finalists of <code>{_text(study.user_attrs['stage_one_study'])}</code>, which this "
                f"storage does not hold: no comparison of the two rankings.</p>")
    if compared is None:
        return ""
    frame, tau = compared
    rows = "".join(f"<tr><td><code>{html.escape(r.spec)}</code></td><td>{r.one_shot:.4g}</td><td>{r.one_shot_rank}</td>"
                   f"<td>{r.stand_alone:.4g} ± {r.stand_alone_se:.2g}</td><td>{r.stand_alone_rank}</td></tr>"
                   for r in frame.itertuples())
    return (f"<h2>Two stages</h2><p>Finalists of <code>{html.escape(study.user_attrs['stage_one_study'])}</code>, re-evaluated "
            f"stand-alone; Kendall tau between the one-shot and the stand-alone ranking: {tau:.2f}.</p>"
            f"<table><thead><tr><th>spec</th><th>one-shot</th><th>rank</th><th>stand-alone</th><th>rank</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def summary(a: Analysis) -> dict:
    v = a.view
    return {
        "study": v.study.study_name,
        "objectives": dict(zip(v.objectives, v.directions)),
        "trials": len(v.study.get_trials(deepcopy=False)),  # not `.trials`: a deep copy of every trial
        "architectures": len(v.architectures),
        "duplicate_trials": a.duplicate_trials,
        "noise_floor": {k: f.to_dict() for k, f in v.noise_floor.items()},
        "verdict": a.verdict.sentence(),
        "latency_source": v.latency_source,
        "significant": a.verdict.significant,
        "hypervolume": a.hypervolume,
        "hypervolume_reference": a.reference.tolist(),
        "front": json.loads(v.front.to_json(orient="records")),
        "findings": a.rules.findings,
        "not_distinguishable": a.rules.noise,
        "observations": a.rules.observations,
        "study_user_attrs": v.study.user_attrs,
        **evidence_summary(a),
    }


def write_report(study: optuna.Study, out_dir: str | Path, profile: LatencyProfile | None = None) -> dict[str, Path]:
    a = analyse(study, profile=profile)
    v = a.view
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [front_figure(v), hypervolume_figure(a.history), heatmap_figure(a), stage_figure(a)]
    importance = importance_figure(a)
    if importance is not None:
        figures.append(importance)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig{i}") for i, fig in enumerate(figures)]
    items = lambda texts: "".join(f"<li>{html.escape(t)}</li>" for t in texts) or "<li>none</li>"  # noqa: E731
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>attnas: {html.escape(study.study_name)}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
.evidence{{background:#f4f4f4;padding:8px 24px}}</style>{_COPY_JS}</head><body>
<h1>attnas study <code>{html.escape(study.study_name)}</code></h1>
<p>{len(study.get_trials(deepcopy=False))} trials, {len(v.architectures)} distinct architectures ({a.duplicate_trials} re-proposals counted once),
{len(v.front)} on the Pareto front of the means; hypervolume {a.hypervolume:.4g} (reference point {np.round(a.reference, 4).tolist()}).</p>
<p id="latency-source">Latency: {html.escape(v.latency_source or 'no latency in this study')}.</p>
<h2>Evidence</h2><ul class="evidence" id="evidence">{evidence(a)}</ul>{confirmation_table(a)}
<h2>Placement rules</h2><h3>Findings (false discovery rate controlled over every effect; intervals at the
false-coverage level, which excludes zero)</h3><ul id="findings">{items(a.rules.findings)}</ul>
<h3>Not distinguishable from noise</h3><ul id="noise">{items(a.rules.noise)}</ul>
<h3>What the front holds</h3><ul>{items(a.rules.observations)}</ul>{stages_html(study)}
{parts[0]}<h2>Pareto front</h2>{front_table(v)}{''.join(parts[1:])}</body></html>"""
    paths = {"html": out / "dashboard.html", "json": out / "summary.json", "front_csv": out / "front.csv",
             "architectures_csv": out / "architectures.csv"}
    # each file whole or not at all (a full disk, a kill): written aside, then renamed into place
    atomic_write_text(paths["html"], page)
    atomic_write_text(paths["json"], json.dumps(summary(a), indent=2, default=str) + "\n")
    atomic_write(paths["front_csv"], lambda temporary: v.front.to_csv(temporary, index=False))
    atomic_write(paths["architectures_csv"], lambda temporary: v.architectures.to_csv(temporary, index=False))
    return paths
