"""What explanations cost, and sluice's integrated gradients beside captum's, measured in
one run on the same models, inputs, steps and thread count.

    python bench/explain.py                       # 8 texts, 3 images explained, 32 steps
    python bench/explain.py --texts 48 --images 12 --json /tmp/explain.json

Models, built into a temporary directory (no network): a text classifier of real size
(the packaged all-MiniLM-L6-v2 encoder, 6 layers of 384, under a seeded 3-label head) and a
ViT of 6 layers of 192 at 224 px with 16 px patches (seeded random weights), both float32.

(a) The cost factor: the runner's items/s without explanations (on 4x as many items,
    after a warm-up run on all of them) over its items/s with `explain = {steps}` (after a
    warm-up on one; the explained run computes every item's labels too). An explained
    item costs steps + 2 forwards and steps backwards (a backward costs about two
    forwards), so about 3 x steps + 2 forwards: ~100 at 32 steps.
(b) sluice's implementation beside captum's IntegratedGradients (Gauss-Legendre, the same
    baselines, targets, steps and rows per pass) on the same micro-batches: the time ratio
    and the largest attribution difference relative to the largest attribution (per token
    for text, per grid cell for images), and each side's completeness error. Skipped, with
    a message, where captum is not installed; sluice does not depend on it.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/explain.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.harness import log, machine_info, use_threads  # noqa: E402

LABELS = ["negative", "neutral", "positive"]


def build_text_model(root: Path) -> Any:
    """The packaged MiniLM encoder under a seeded 3-label head, saved; its spec."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from core.contracts.spec import DEFAULT_MODELS_FILE, ModelSpec, load_registry

    source = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"].resolved_source()
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        source,
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    path = root / "minilm-classify"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return ModelSpec(
        name="minilm-classify",
        task="classify",
        source=str(path),
        dtype="float32",
        max_length=256,
        max_batch_tokens=2048,
    )


def build_image_model(root: Path) -> Any:
    """A seeded ViT (6 x 192, 224 px, 16 px patches) with its image processor; its spec."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification
    from transformers import ViTImageProcessorPil as ViTImageProcessor

    from core.contracts.spec import ModelSpec

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=3,
        intermediate_size=768,
        num_labels=4,
        id2label=dict(enumerate(["circle", "square", "triangle", "stripes"])),
    )
    path = root / "vit-6x192"
    ViTForImageClassification(config).eval().save_pretrained(path)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(path)
    return ModelSpec(
        name="vit-6x192",
        task="classify_image",
        source=str(path),
        dtype="float32",
        max_batch_images=32,
    )


def items_per_s(run: Callable[[list[Any]], Any], items: list[Any], warm_up: int) -> float:
    """Items per second of one run over items, after a warm-up run on the first warm_up
    (on a CPU, oneDNN compiles a kernel per new matmul shape: the first run of a shape
    pays for it)."""
    run(items[:warm_up])
    start = time.perf_counter()
    results = run(items)
    seconds = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error_message for r in results if not r.ok][:3]
    return len(items) / seconds


def compare(
    ours: Callable[[], tuple[list[list[float]], list[tuple[float, float]]]],
    theirs: Callable[[], tuple[list[list[float]], list[tuple[float, float]]]],
) -> dict[str, float]:
    """Time both and compare what they attribute: each returns per item its attributions
    and (sum of attributions, f(x) - f(baseline)). The explained run before has warmed
    their shapes. Completeness error: the largest |sum - delta| over the mean |delta| (a
    random model gives some item a delta near 0, whose own relative error means little)."""
    figures: dict[str, float] = {}
    outs = []
    for name, fn in (("sluice", ours), ("captum", theirs)):
        start = time.perf_counter()
        outs.append(fn())
        figures[f"{name}_seconds"] = time.perf_counter() - start
        ends = outs[-1][1]
        mean_delta = sum(abs(d) for _, d in ends) / len(ends)
        error = max(abs(total - d) for total, d in ends) / mean_delta
        figures[f"{name}_max_completeness_error"] = error
    scale = max(abs(v) for item in outs[0][0] for v in item)
    diff = max(
        abs(a - b)
        for x, y in zip(outs[0][0], outs[1][0], strict=True)
        for a, b in zip(x, y, strict=True)
    )
    figures["time_ratio_captum_over_sluice"] = figures["captum_seconds"] / figures["sluice_seconds"]
    figures["max_abs_difference_over_max_abs_attribution"] = diff / scale
    return figures


def text_vs_captum(runner: Any, texts: list[str], params: Any) -> dict[str, float]:
    """sluice's explain_texts beside captum on the same micro-batches (as the runner plans)."""
    import torch
    from captum.attr import IntegratedGradients

    from models.explain_text import baseline_ids, explain_texts

    explain = params.explain
    encodings = runner.tokenize(texts, True, details=True)[0]
    plan = runner.plan([len(e["input_ids"]) for e in encodings], runner.cost_factor(params))
    batches = [[encodings[i] for i in batch] for batch in plan]
    executor = runner.explain_executor
    model = runner.model

    def ours() -> tuple[list[list[float]], list[tuple[float, float]]]:
        scores, errors = [], []
        for encs in batches:
            _, whys = explain_texts(
                model, runner.tensors(encs), encs, explain, runner.labels, runner.pad_id, executor
            )
            scores += [[t["score"] for t in w["tokens"]] for w in whys]
            errors += [(w["sum"], w["delta"]) for w in whys]
        return scores, errors

    def forward(embeds: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return model(inputs_embeds=embeds, attention_mask=mask, token_type_ids=types).logits

    ig = IntegratedGradients(forward)

    def theirs() -> tuple[list[list[float]], list[tuple[float, float]]]:
        scores, errors = [], []
        for encs in batches:
            batch = runner.tensors(encs)
            ids = batch["input_ids"]
            embed = model.get_input_embeddings()
            inputs = embed(ids).detach()
            base = embed(baseline_ids(ids, encs, runner.pad_id)).detach()
            with torch.no_grad():
                logits = model(**batch).logits
            targets = logits.argmax(-1)
            attributions, _ = ig.attribute(  # its delta: both ends, as sluice computes
                inputs,
                baselines=base,
                target=targets,
                additional_forward_args=(batch["attention_mask"], batch["token_type_ids"]),
                n_steps=explain.steps,
                method="gausslegendre",
                internal_batch_size=max(1, executor.max_batch_tokens // ids.shape[1]),
                return_convergence_delta=True,
            )
            per_token = attributions.sum(-1)
            twice = {k: batch[k].repeat(2, 1) for k in ("attention_mask", "token_type_ids")}
            with torch.no_grad():
                ends = model(inputs_embeds=torch.cat([inputs, base]), **twice).logits
            k = len(encs)
            change = (ends[:k] - ends[k:]).gather(1, targets.unsqueeze(1)).squeeze(1)
            for row, enc in enumerate(encs):
                keep = [p for p, special in enumerate(enc["special"]) if not special]
                scores.append([float(per_token[row, p]) for p in keep])
                errors.append((float(per_token[row].sum()), float(change[row])))
        return scores, errors

    return compare(ours, theirs)


def images_vs_captum(runner: Any, values: list[str], params: Any) -> dict[str, float]:
    """sluice's explain_images beside captum on the same micro-batches of pixels."""
    import torch
    from captum.attr import IntegratedGradients

    from models.explain_images import explain_images, pool_grid

    explain = params.explain
    pixels = runner.prepare(values, list(range(len(values))))[1].to(runner.device)
    per_batch = max(1, runner.explain_executor.max_batch_tokens // (explain.steps + 2))
    batches = [pixels[i : i + per_batch] for i in range(0, len(pixels), per_batch)]
    logits_of = runner.classifier.logits
    executor = runner.explain_executor

    def ours() -> tuple[list[list[float]], list[tuple[float, float]]]:
        cells, errors = [], []
        for px in batches:
            _, whys = explain_images(logits_of, px, explain, runner.labels, executor)
            cells += [[v for row in w["grid"] for v in row] for w in whys]
            errors += [(w["sum"], w["delta"]) for w in whys]
        return cells, errors

    ig = IntegratedGradients(logits_of)

    def theirs() -> tuple[list[list[float]], list[tuple[float, float]]]:
        cells, errors = [], []
        for px in batches:
            with torch.no_grad():
                targets = logits_of(px).argmax(-1)
                change = logits_of(px) - logits_of(torch.zeros_like(px))
            attributions, _ = ig.attribute(  # its delta: both ends, as sluice computes
                px,
                baselines=torch.zeros_like(px),
                target=targets,
                n_steps=explain.steps,
                method="gausslegendre",
                internal_batch_size=executor.max_batch_tokens,
                return_convergence_delta=True,
            )
            grids = pool_grid(attributions.sum(1))
            change = change.gather(1, targets.unsqueeze(1)).squeeze(1)
            cells += [g.flatten().tolist() for g in grids]
            errors += list(zip(grids.sum((1, 2)).tolist(), change.tolist(), strict=True))
        return cells, errors

    return compare(ours, theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=8, help="texts explained (4x plain)")
    parser.add_argument("--images", type=int, default=3, help="images explained (4x plain)")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also save the figures here")
    args = parser.parse_args()

    from core.contracts.images import data_url
    from core.contracts.params import parse_params
    from models.classify import ClassifyRunner
    from models.classify_image import ClassifyImageRunner
    from tests.tiny_images import encode, random_image
    from tests.tiny_models import bench_texts

    threads = use_threads(args.threads)
    report: dict[str, Any] = {"machine": machine_info(threads), "steps": args.steps}
    try:
        import captum  # noqa: F401

        have_captum = True
    except ImportError:
        have_captum = False
    with tempfile.TemporaryDirectory(prefix="sluice-explain-") as tmp:
        root = Path(tmp)
        log("building the models")
        text_spec, image_spec = build_text_model(root), build_image_model(root)
        texts = bench_texts(4 * args.texts, seed=5)
        rng = random.Random(5)
        images = [data_url(encode(random_image(rng))) for _ in range(4 * args.images)]
        for task, runner, items, n in (
            ("classify", ClassifyRunner(text_spec), texts, args.texts),
            ("classify_image", ClassifyImageRunner(image_spec), images, args.images),
        ):
            plain = parse_params(task, {})
            explained = parse_params(task, {"explain": {"steps": args.steps}})
            log(f"{task}: plain, then explained")
            fast = items_per_s(lambda xs, r=runner, p=plain: r.run(xs, p), items, len(items))
            slow = items_per_s(lambda xs, r=runner, p=explained: r.run(xs, p), items[:n], 1)
            figures: dict[str, Any] = {
                "model": runner.spec.name,
                "plain_items_per_s": fast,
                "explained_items_per_s": slow,
                "cost_factor": fast / slow,
            }
            if not have_captum:
                figures["captum"] = "skipped: captum is not installed (pip install captum)"
            else:
                log(f"{task}: sluice beside captum")
                compare_fn = text_vs_captum if task == "classify" else images_vs_captum
                figures["captum"] = compare_fn(runner, items[:n], explained)
            report[task] = figures
            del runner
    print(f"CPU: {report['machine']['cpu']}, torch threads: {threads}, steps: {args.steps}")
    for task in ("classify", "classify_image"):
        f = report[task]
        print(
            f"{task} ({f['model']}): plain {f['plain_items_per_s']:.1f} items/s, explained "
            f"{f['explained_items_per_s']:.2f} items/s: cost factor {f['cost_factor']:.1f}x"
        )
        c = f["captum"]
        if isinstance(c, str):
            print(f"  captum: {c}")
            continue
        print(
            f"  captum / sluice time: {c['time_ratio_captum_over_sluice']:.2f}; max attribution "
            f"difference / max attribution: {c['max_abs_difference_over_max_abs_attribution']:.1e}"
            f"; max completeness error: sluice {c['sluice_max_completeness_error']:.1e}, "
            f"captum {c['captum_max_completeness_error']:.1e}"
        )
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
