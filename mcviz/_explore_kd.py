"""The knowledge-distillation explorer: how temperature softens a teacher's prediction.

``temperature_explorer`` is re-exported by ``mcv.widgets``; like the other explorers it returns an
:class:`mcviz.widgets.Explorer` and never displays it.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from mcviz import distill
from mcviz._checks import BOUNDS, check_data, check_int, check_model, check_number
from mcviz._explorer import Explorer

# the slider's range: from sharper than T = 1 to almost uniform (a log slider cannot start at 0)
T_MIN, T_MAX = 0.1, float(BOUNDS["temperature"].high)


def temperature_explorer(teacher: nn.Module, data, *, index: int = 0, temperature: float = 4.0) -> Explorer:
    """Returns an explorer of soft targets: a temperature slider and a test-image slider above the
    teacher's softened class distribution for that image.

    Each setting calls ``mcv.distill.soft_targets`` on one test image, as lesson 06 does. The bars
    are the probabilities at the chosen temperature, the grey markers those at T = 1 and the
    image is drawn beside them; the title gives the image's label and the distribution's entropy,
    the note the most likely wrong classes (the "dark knowledge"). ``teacher`` is left unchanged.

    Args:
        teacher: a trained classifier returning logits.
        data: a DataBundle (``mcv.data.load``); its test split supplies the images.
        index: the starting test image, an int in [0, number of test images).
        temperature: the starting T, a number in [0.1, 100].
    """
    check_model(teacher, "teacher")
    check_data(data)
    X, y = data.test.tensors
    n = len(y)
    index = check_int(index, "index", low=0, high=n - 1)  # a test image
    temperature = check_number(temperature, "temperature", low=T_MIN, high=T_MAX)

    t_slider = widgets.FloatLogSlider(
        value=temperature,
        base=10,
        min=math.log10(T_MIN),
        max=math.log10(T_MAX),
        step=0.01,
        description="temperature",
        readout_format=".2f",
    )
    i_slider = widgets.IntSlider(
        value=index, min=0, max=n - 1, description="test image", continuous_update=False
    )
    note = widgets.HTML()
    image = X[index]
    has_image = image.dim() == 3
    classes = list(range(data.num_classes))
    if has_image:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3], horizontal_spacing=0.08)
    else:
        fig = go.Figure()
    figure = go.FigureWidget(fig)
    where = {"row": 1, "col": 1} if has_image else {}
    figure.add_bar(x=classes, y=[0.0] * len(classes), name="softened", **where)
    figure.add_scatter(
        x=classes, y=[0.0] * len(classes), mode="markers", name="T = 1", marker={"color": "grey"}, **where
    )
    if has_image:
        figure.add_heatmap(
            z=image[0].tolist(), colorscale="gray_r", showscale=False, name="image", row=1, col=2
        )
        plain = {"showticklabels": False, "showgrid": False, "zeroline": False}
        figure.update_yaxes(autorange="reversed", scaleanchor="x2", row=1, col=2, **plain)
        figure.update_xaxes(row=1, col=2, **plain)
    figure.update_layout(height=360, yaxis_range=[0, 1], xaxis_title="class", yaxis_title="probability")
    figure.update_xaxes(tickmode="array", tickvals=classes, **where)

    def redraw(_change=None) -> None:
        i, t = i_slider.value, float(t_slider.value)
        table = distill.soft_targets(teacher, X[i : i + 1], temperatures=(t,) if t == 1.0 else (t, 1.0))
        soft = table[table.temperature == t].sort_values("class")
        hard = table[table.temperature == 1.0].sort_values("class")
        p = soft.probability.tolist()
        entropy = -sum(q * math.log(q) for q in p if q > 0)
        label = int(y[i])
        colors = ["#d62728" if k == label else "#1f77b4" for k in classes]
        wrong = sorted((k for k in classes if k != label), key=lambda k: -p[k])[:2]
        with figure.batch_update():
            figure.data[0].update(y=p, marker_color=colors, name=f"T = {t:.2f}")
            figure.data[1].y = hard.probability.tolist()
            if has_image:
                figure.data[2].z = X[i][0].tolist()
            figure.layout.title = (
                f"test image {i} (label {label}) at T = {t:.2f}: entropy {entropy:.2f} nats "
                f"(uniform {math.log(len(classes)):.2f})"
            )
        top = max(classes, key=lambda k: p[k])
        similar = ", ".join(f"{k} ({p[k]:.3f})" for k in wrong)
        note.value = (
            f"The teacher predicts {top} ({p[top]:.3f}); the label is {label}. Most likely wrong "
            f"classes at T = {t:.2f}: {similar}. At T = 1 the top class has {max(hard.probability):.3f}."
        )

    redraw()
    t_slider.observe(redraw, names="value")
    i_slider.observe(redraw, names="value")
    return Explorer({"temperature": t_slider, "index": i_slider}, figure, note)
