"""The Gradio layout of ``whiteboxdl app``: components and wiring only; the work is in handlers.

Example
-------
>>> from whiteboxdl.app.ui import build_app      # doctest: +SKIP
>>> build_app().launch(server_name="127.0.0.1")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from typing import Any, Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from whiteboxdl.app import handlers  # noqa: E402
from whiteboxdl.app.files import images_as_files  # noqa: E402
from whiteboxdl.app.inputs import AUTO_TARGET, image_from_upload  # noqa: E402
from whiteboxdl.app.models import ModelRegistry, ModelSpec  # noqa: E402
from whiteboxdl.data.images import to_pil  # noqa: E402

log = logging.getLogger("whiteboxdl.app")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: How many requests run at once (threads sharing the models); the rest wait in the queue.
CONCURRENCY = 4


def _decode_upload(payload):
    if payload is None:
        return None
    source = payload.url if payload.url and payload.url.startswith("data:") else payload.path
    try:
        return image_from_upload(source)
    except ValueError as exc:
        raise gr.Error(f"Invalid image: {exc}", print_exception=False) from None


def validated_image(**kwargs) -> gr.Image:
    """A ``gr.Image`` whose uploads are decoded by whiteboxdl's validating loader (PIL RGB).

    Non-images, decompression bombs, oversized files and NaN arrays become a user-facing
    ``gr.Error`` instead of a stack trace. (The method is replaced on the instance: a subclass
    would make Gradio write a ``.pyi`` stub next to this file.)
    """
    image = gr.Image(type="pil", format="png", **kwargs)
    image.preprocess = _decode_upload
    return image


def user_errors(fn: Callable) -> Callable:
    """Wrap a request handler: ``ValueError`` becomes a ``gr.Error`` with its message, anything
    else a short one; returned images go to Gradio as files (see :mod:`whiteboxdl.app.files`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return images_as_files(fn(*args, **kwargs))
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - shown to the user as one line, logged in full
            log.error("request failed:\n%s", traceback.format_exc())
            raise gr.Error(f"internal error ({type(exc).__name__}: {exc}); see the server log",
                           print_exception=False) from None
    return wrapper


def _model_note(registry: ModelRegistry) -> str:
    lines = []
    for spec in registry.specs:
        usable, why = registry.availability(spec.key)
        lines.append(f"- **{spec.label}**: {'available' if usable else 'UNAVAILABLE'} — {why}")
    return "\n".join(lines)


def _target_choices(spec: ModelSpec) -> list[str]:
    return [AUTO_TARGET, *spec.choices()]


def _quick_choices(spec: ModelSpec) -> list[str]:
    return [spec.class_label(i) for i in spec.quick_picks]


def rule_settings() -> dict[str, Any]:
    """One input per pullback setting beyond the ReLU temperature and gate, read from the rule
    registry (so a newly registered rule's temperature appears here too), and the active rules."""
    from whiteboxdl.pullbacks.registry import default_rule_names, options, rule_names

    inputs: dict[str, Any] = {}
    with gr.Accordion("Pullback rules (advanced)", open=False, elem_id="pb-rules"):
        inputs["rules"] = gr.CheckboxGroup(list(rule_names()), value=list(default_rule_names()),
                                           label="Active rules (relu + maxpool: the paper's; relu6: "
                                                 "ReLU6 networks)")
        for name, option in options().items():
            if name == "temperature":
                continue
            label = f"{name.replace('_', ' ')} — {option.help}" if option.help else name
            if option.choices is not None:
                inputs[name] = gr.Radio(list(option.choices), value=option.default, label=label)
            else:
                inputs[name] = gr.Number(option.default, label=label, minimum=0)
    return inputs


def pullbacks_tab(registry: ModelRegistry) -> None:
    """The 'Excitation pullbacks' tab."""
    first = registry.specs[0]
    with gr.Row():
        with gr.Column(scale=1):
            image = validated_image(label="Input image", height=260,
                                   sources=["upload", "clipboard"], elem_id="pb-input")
            gr.Examples([[str(p)] for p in handlers.example_files()], inputs=[image],
                        label="Examples (MNIST test digits and photos)", examples_per_page=14)
            with gr.Row():
                sample = gr.Button("Sample from the test set", size="sm")
            sample_info = gr.Markdown()
            model = gr.Dropdown([s.label for s in registry.specs], value=first.label,
                                label="Model", elem_id="pb-model")
            model_note = gr.Markdown(_model_note(registry))
            target = gr.Dropdown(_target_choices(first), value=AUTO_TARGET, filterable=True,
                                 allow_custom_value=True,
                                 label="Target class (type to search)", elem_id="pb-target")
            quick = gr.Radio(_quick_choices(first), label="Quick picks", value=None)
            with gr.Accordion("Settings", open=True):
                steps = gr.Slider(1, 50, value=first.steps, step=1, label="Steps K")
                with gr.Row():
                    alpha = gr.Number(first.alpha, label="Step size α (L2)", minimum=0)
                    eps = gr.Number(first.eps, label="L2 radius ε (0 = none)", minimum=0)
                temperature = gr.Slider(0.01, 3.0, value=0.3, step=0.01,
                                        label="ReLU temperature T (ReLU6 networks such as "
                                              "EfficientNet-Lite: 'relu6 temperature' below)")
                gate = gr.Radio(list(handlers.GATES), value="sigmoid", label="Gate")
                method = gr.Radio([("excitation pullback", "pullback"),
                                   ("vanilla gradient", "gradient"),
                                   ("both side by side", "both")],
                                  value="pullback", label="Method")
            rule_inputs = rule_settings()
            run = gr.Button("Explain", variant="primary", elem_id="pb-explain")
        with gr.Column(scale=2):
            status = gr.Markdown("Pick an image and a target class, then press **Explain**.",
                                 elem_id="pb-status")
            with gr.Row():
                columns, outputs = [], []
                for name, title in (("pullback", "Excitation pullback ascent"),
                                    ("gradient", "Vanilla gradient ascent")):
                    with gr.Column(visible=name == "pullback") as column:
                        gr.Markdown(f"### {title}")
                        with gr.Row():
                            diff = gr.ImageSlider(label="perturbed ↔ difference (min–max scaled)",
                                                  type="pil", format="png",
                                                  elem_id=f"{name}-diff-slider")
                            versus = gr.ImageSlider(label="perturbed ↔ input", type="pil",
                                                    format="png", elem_id=f"{name}-input-slider")
                        top = gr.Label(num_top_classes=handlers.TOP_K,
                                       label="Top-5 of the perturbed image")
                    columns.append(column)
                    outputs += [diff, versus, top]
            top_input = gr.Label(num_top_classes=handlers.TOP_K, label="Top-5 of the input")
            with gr.Row():
                plot = gr.Plot(label="Target logit per step", scale=2)
                table = gr.Dataframe(label="Target logit per step", interactive=False, scale=1)

    @user_errors
    def on_model(label: str):
        spec = registry.spec(label)
        usable, _ = registry.availability(spec.key)
        return (gr.update(choices=_target_choices(spec), value=AUTO_TARGET),
                gr.update(choices=_quick_choices(spec), value=None),
                spec.steps, spec.alpha, spec.eps, gr.update(interactive=usable),
                _model_note(registry))

    model.change(on_model, [model], [target, quick, steps, alpha, eps, run, model_note],
                 api_name=False)
    quick.input(lambda pick: pick, [quick], [target], api_name=False)
    method.change(lambda m: [gr.update(visible=m in ("pullback", "both")),
                             gr.update(visible=m in ("gradient", "both"))],
                  [method], columns, api_name=False)

    @user_errors
    def on_sample(label: str):
        img, info = handlers.sample_test_image(registry.spec(label))
        return img, info

    sample.click(on_sample, [model], [image, sample_info], api_name="sample")

    names = list(rule_inputs)

    @user_errors
    def on_explain(img, label, tgt, k, a, e, t, g, m, *rule_values,
                   progress=gr.Progress(track_tqdm=True)):
        settings = dict(zip(names, rule_values))
        result = handlers.explain(registry, img, label, tgt, k, a, e, t, g, m, settings=settings)
        values: list[Any] = []
        for name in ("pullback", "gradient"):
            run_ = result.runs.get(name)
            values += ([(run_.perturbed, run_.difference), (run_.perturbed, result.input),
                        run_.top] if run_ else [None, None, None])
        header, rows = result.logit_table()
        return [*values, result.top_input, result.logit_figure(), pd.DataFrame(rows, columns=header),
                result.status()]

    run.click(on_explain, [image, model, target, steps, alpha, eps, temperature, gate, method,
                           *rule_inputs.values()],
              [*outputs, top_input, plot, table, status], api_name="explain")


def _view_outputs(view: handlers.WhiteboxView, note: str | None = None) -> list[Any]:
    return [view.steps, view.poses, view.probs, note or view.status(), view.figure]


def whitebox_tab(registry: ModelRegistry) -> None:
    """The 'White-box network' tab: the semantic network's processing of one digit, and APGD-CE."""
    digits = [str(int(d)) for d in registry.semantic_digits]
    ten = len(digits) == 10
    gr.Markdown(f"The semantic-feature network (MNIST {'all ten digits' if ten else ' vs '.join(digits)}) "
                "is interpretable by inspection: each layer's output and the pose of each "
                "class's best-matching feature are shown (maps: blue < 0 < red, symmetric "
                "scale). It is trained on first use "
                f"({'about 8 CPU minutes' if ten else 'about a minute'}) and cached.")
    with gr.Row():
        with gr.Column(scale=1):
            sketch = gr.Sketchpad(label=f"Draw a digit ({'0-9' if ten else ' or '.join(digits)})",
                                  type="numpy", height=300,
                                  canvas_size=(280, 280), elem_id="wb-sketch",
                                  brush=gr.Brush(default_size=14, colors=["#000000"],
                                                 color_mode="fixed"))
            with gr.Row():
                use_drawing = gr.Button("Use drawing", size="sm")
                sample = gr.Button("Sample from the test set", size="sm")
            digit = validated_image(label="Digit (as the network sees it, 28×28)", height=200,
                                    sources=["upload", "clipboard"], elem_id="wb-digit")
            inspect = gr.Button("Inspect", variant="primary", elem_id="wb-inspect")
            with gr.Accordion("Attack", open=True):
                eps = gr.Slider(0.01, 0.5, value=0.3, step=0.01, label="L∞ radius ε")
                label = gr.Radio(["auto – predicted class"], value="auto – predicted class",
                                 label="True label")
                run_attack = gr.Button("Attack with APGD-CE", elem_id="wb-attack")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="wb-status")
            views = []
            with gr.Row():
                for name, title in (("clean", "Clean image"), ("adv", "Adversarial image")):
                    with gr.Column():
                        gr.Markdown(f"### {title}")
                        note = gr.Markdown(elem_id=f"wb-{name}-note")
                        steps = gr.Gallery(label="processing steps", columns=3, height=200,
                                           format="png", elem_id=f"wb-{name}-steps")
                        poses = gr.Gallery(label="best-matching pose of each class", columns=2,
                                           height=200, format="png", elem_id=f"wb-{name}-poses")
                        probs = gr.Label(label="class probabilities")
                        figure = gr.Image(label="processing steps (whiteboxdl.semantic.inspect)",
                                          type="pil", format="png", interactive=False,
                                          elem_id=f"wb-{name}-figure")
                    views.append([steps, poses, probs, note, figure])

    @user_errors
    def on_use_drawing(value):
        return to_pil(handlers.semantic_input(value)[0], signed=False)

    @user_errors
    def on_sample():
        model = registry.semantic()
        img, info = handlers.sample_semantic_digit(model)
        return img, info

    @user_errors
    def on_inspect(img):
        model = registry.semantic()
        view = handlers.whitebox_view(model, handlers.semantic_input(img))
        choices = ["auto – predicted class", *[str(c) for c in model.class_names]]
        return [*_view_outputs(view), gr.update(choices=choices)]

    @user_errors
    def on_attack(img, radius, true_label):
        model = registry.semantic()
        view, note = handlers.attack_view(model, handlers.semantic_input(img), radius,
                                          true_label)
        return _view_outputs(view, note)

    use_drawing.click(on_use_drawing, [sketch], [digit], api_name=False)
    sample.click(on_sample, None, [digit, status], api_name="whitebox_sample")
    inspect.click(on_inspect, [digit], [*views[0], label], api_name="whitebox")
    run_attack.click(on_attack, [digit, eps, label], views[1], api_name="attack")


def build_app(registry: ModelRegistry | None = None) -> gr.Blocks:
    """The whole app as a ``gr.Blocks`` (not launched)."""
    registry = registry or ModelRegistry()
    with gr.Blocks(title="whiteboxdl explorer", analytics_enabled=False) as demo:
        gr.Markdown("# whiteboxdl explorer\nExcitation pullbacks of ReLU networks and a "
                    "white-box semantic-feature network, in the browser.")
        with gr.Tab("Excitation pullbacks"):
            pullbacks_tab(registry)
        with gr.Tab("White-box network"):
            whitebox_tab(registry)
    demo.queue(default_concurrency_limit=CONCURRENCY)
    return demo


def warm_up() -> None:
    """Import the compute modules and render one tiny figure (font cache) before the first request.

    Models are not loaded here: each is loaded by the first request that needs it.
    """
    import whiteboxdl.pullbacks  # noqa: F401
    import whiteboxdl.models.cnn  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    FigureCanvasAgg(fig).draw()


def launch(host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
           registry: ModelRegistry | None = None, block: bool = True, **kwargs):
    """Build and start the app on ``host:port`` (loopback by default)."""
    demo = build_app(registry)
    warm_up()
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                allowed_paths=[str(p.parent) for p in handlers.example_files()],
                max_file_size="25mb", ssr_mode=False, quiet=True, **kwargs)
    return demo
