"""``streamdet train`` and ``streamdet eval``: train a detector on splits; score it with pycocotools."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

from streamdet.cli.options import (
    add_geometry_options,
    dataset_root,
    fidelity_config_from_args,
    geometry_from_args,
    parse_size,
    resolve_split,
)

if TYPE_CHECKING:
    from streamdet.train import TrainConfig


def _crop_size(text: str) -> tuple[int, int] | None:
    """``--crop``: ``WxH`` or ``none``."""
    return None if text.strip().lower() == "none" else parse_size(text)


def _ratios(text: str) -> tuple[float, ...]:
    """``--anchor-ratios``: comma-separated numbers (``RetinaNetConfig`` checks they are distinct and
    positive)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        message = f"expected comma-separated numbers like 0.5,1,2, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _stage_widths(text: str) -> tuple[int, ...]:
    """``--stage-channels``: four comma-separated positive integers."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 4 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive integers like 24,64,128,192, got {text!r}")
    return widths


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``average``, ``relevel`` and ``eval``."""
    register_train(subparsers)
    register_average(subparsers)
    register_relevel(subparsers)
    register_eval(subparsers)


def register_train(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``: data and output, recipe, augmentation (:func:`_add_augmentation_options`), validation,
    model (:func:`_add_model_options`), seed, resume / fine-tune and device."""
    from streamdet.model import MODEL_SIZES
    from streamdet.train import DEFAULT_EVENT_SCALE, AugmentConfig, TrainConfig

    defaults = TrainConfig()
    train = subparsers.add_parser(
        "train",
        help="train the SNN-friendly RetinaNet on built dataset splits",
        description="Train a detector on DIR/train of every --data DIR (DIR/val, when present, or the --val "
        "splits select the best epoch by mAP@0.5). Writes OUT (best checkpoint) and OUT.last.pt (state "
        "for --resume).",
    )
    train.add_argument(
        "--modality",
        choices=("events", "intensity"),
        help="the input the model reads (required without --init; default: the --init checkpoint's)",
    )
    train.add_argument(
        "--data",
        required=True,
        nargs="+",
        action="extend",
        metavar="DIR",
        help="dataset root(s) holding train/ (and val/), or their train split folders",
    )
    train.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    train.add_argument(
        "--size",
        choices=tuple(MODEL_SIZES),
        help=f"model width/depth preset (default: the --init checkpoint's, else {defaults.size})",
    )
    train.add_argument(
        "--activation",
        choices=("quant", "relu"),
        help=f"default: the --init checkpoint's, else {defaults.activation}",
    )
    train.add_argument(
        "--quant-levels",
        type=int,
        help=f"Quant-ReLU levels L (default: the --init checkpoint's, else {defaults.quant_levels})",
    )
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, default=defaults.lr, help="peak AdamW learning rate")
    train.add_argument(
        "--event-scale",
        type=float,
        help=f"events per pixel = input 1 (default: the --init checkpoint's, else {DEFAULT_EVENT_SCALE:g})",
    )
    train.add_argument(
        "--window-us",
        type=int,
        help="the model's input window in microseconds, ending at each label (default: the --init "
        "checkpoint's, else the window the training data was built with)",
    )
    train.add_argument(
        "--crop",
        type=_crop_size,
        default=AugmentConfig().crop_size,
        help="random crop WxH (multiples of 32) or none",
    )
    _add_augmentation_options(train)
    train.add_argument(
        "--val",
        nargs="+",
        action="extend",
        default=None,
        metavar="SPLIT_DIR",
        help="validation split(s) that select the best epoch (default: DIR/val of every --data DIR)",
    )
    train.add_argument(
        "--val-limit", type=int, default=None, help="validation images per epoch (default all)"
    )
    _add_model_options(train, defaults)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--resume", action="store_true", help="continue from OUT.last.pt")
    train.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from this checkpoint's weights (name or path), fresh optimiser and schedule",
    )
    _add_distillation_options(train)
    train.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    train.set_defaults(func=run_train)


def _add_distillation_options(train: argparse.ArgumentParser) -> None:
    """``train``'s distillation against forgetting (``streamdet.train.distillation_loss``)."""
    train.add_argument(
        "--distill-from",
        default=None,
        metavar="CKPT",
        help="teacher (name or path, usually the --init model): the student's outputs on the samples of "
        "--distill-data stay close to its outputs (Learning without Forgetting)",
    )
    train.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of the distillation term added to the detection loss (default 1 with --distill-from)",
    )
    train.add_argument(
        "--distill-data",
        nargs="+",
        action="extend",
        default=None,
        metavar="DIR",
        help="the --data roots (the old scenes, spelled as given to --data) whose samples are distilled; "
        "required with --distill-from",
    )


def _add_augmentation_options(train: argparse.ArgumentParser) -> None:
    """``train``'s sensor augmentations: noise, thinning and hot pixels of events; spurious spikes,
    uneven illumination and texture of intensity."""
    from streamdet.train import AugmentConfig

    augment_defaults = AugmentConfig()
    train.add_argument(
        "--aug-noise",
        type=float,
        default=augment_defaults.noise_rate,
        metavar="RATE",
        help="events: most Poisson noise events added per pixel, polarity and window (default "
        f"{augment_defaults.noise_rate})",
    )
    train.add_argument(
        "--aug-noise-power",
        type=float,
        default=augment_defaults.noise_power,
        metavar="X",
        help="events: noise rate drawn as RATE * u**X, u ~ U(0, 1) (default 1: uniform)",
    )
    train.add_argument(
        "--aug-thinning",
        type=float,
        default=augment_defaults.thinning,
        metavar="P",
        help="events: probability of thinning a sample, each event kept with probability U(0.3, 1) "
        "(default 0: never)",
    )
    train.add_argument(
        "--aug-hot-pixels",
        type=float,
        default=augment_defaults.hot_pixels,
        metavar="F",
        help="events: hot pixels, a fraction U(0, F) of the pixels at 50-200 Hz (default 0: none)",
    )
    train.add_argument(
        "--aug-spike-noise",
        type=float,
        default=augment_defaults.spike_noise,
        metavar="R",
        help="intensity: most spurious firing rate added, drawn per sample as U(0, R) and per pixel "
        f"as U(0, that) (default {augment_defaults.spike_noise})",
    )
    train.add_argument(
        "--aug-illumination",
        type=float,
        default=augment_defaults.illumination,
        metavar="A",
        help="intensity: uneven lighting, the rate multiplied by a smooth random gain in [1 - a, 1 + a] over "
        "2-4 cells per side, a ~ U(0, A) per sample, A in [0, 1] (default 0: off)",
    )
    train.add_argument(
        "--aug-texture",
        type=float,
        default=augment_defaults.texture,
        metavar="A",
        help="intensity: surface texture, the rate multiplied by 1 + t * field, field a random grid in "
        "[-1, 1] of 2-16 px cells upsampled bilinearly, t ~ U(0, A) per sample, A in [0, 1] (default 0: off)",
    )


def _add_model_options(train: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """``train``'s model options (``defaults``: the ``TrainConfig`` defaults): box loss, anchors, the
    finest pyramid level, head blocks, the learning rate of new layers and history windows."""
    from streamdet.model import BOX_LOSSES

    train.add_argument(
        "--box-loss",
        default=defaults.box_loss,
        choices=BOX_LOSSES,
        help="smooth_l1 on box deltas, or giou on the decoded boxes (default %(default)s)",
    )
    train.add_argument(
        "--anchor-min-size",
        type=float,
        default=None,
        metavar="PX",
        help="side of the smallest anchor (default: the --init checkpoint's, else 10)",
    )
    train.add_argument(
        "--anchor-ratios",
        type=_ratios,
        default=None,
        metavar="R,R,...",
        help="anchor height/width ratios, e.g. 0.5,1,2,3 (default: the --init checkpoint's, else 0.5,1,2)",
    )
    train.add_argument(
        "--finest-stride",
        type=int,
        choices=(4, 8),
        default=None,
        help="4 adds a stride-4 pyramid level for small objects, about 2.7x the compute "
        "(default: the --init checkpoint's, else 8)",
    )
    train.add_argument(
        "--head-blocks",
        type=int,
        default=None,
        metavar="N",
        help="residual blocks in each head after its conv layer, 1.43x the compute for one "
        "(default: the --init checkpoint's, else 0; --init adds them as identities, which stayed off "
        "in the one-epoch fine-tunes of docs/history/model-card-history.md)",
    )
    train.add_argument(
        "--stage-channels",
        type=_stage_widths,
        default=None,
        metavar="C,C,C,C",
        help="widths of the four backbone stages (strides 4-32), e.g. 24,64,128,192 (default: the --init "
        "checkpoint's, else the --size preset's; --init from narrower stages copies channels, so training "
        "starts from the narrower model's function)",
    )
    train.add_argument(
        "--new-layer-lr",
        type=float,
        default=defaults.new_layer_lr,
        metavar="LR",
        help="peak learning rate of the layers --init's model lacks (a P2 lateral, new head blocks), "
        f"which learn from scratch while the rest fine-tunes at --lr (default {defaults.new_layer_lr:g})",
    )
    train.add_argument(
        "--history-windows",
        type=int,
        default=None,
        metavar="N",
        help="also read the N windows before the model's window, as extra input channels "
        "(default: the --init checkpoint's, else 0)",
    )


def register_average(subparsers: argparse._SubParsersAction) -> None:
    """Add ``average``."""
    average = subparsers.add_parser(
        "average",
        help="average the weights of runs fine-tuned from one checkpoint (a model soup)",
        description="Write a checkpoint whose weights (and BN statistics, Quant-ReLU clips) are the mean "
        "of the given checkpoints'. They must share modality, architecture, anchors and input windows, "
        "as runs started with --init from one checkpoint do; a checkpoint reading fewer earlier windows "
        "(the --init of a run given more --history-windows) is first carried over as --init carries it, "
        "with zero weight on the windows it lacks.",
    )
    average.add_argument(
        "models", nargs="+", metavar="CKPT", help="checkpoints (names or paths), two or more"
    )
    average.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    average.set_defaults(func=run_average)


def register_relevel(subparsers: argparse._SubParsersAction) -> None:
    """Add ``relevel``."""
    relevel = subparsers.add_parser(
        "relevel",
        help="write a Quant-ReLU model read at another number of activation levels",
        description="Write a checkpoint with the same weights and clips whose Quant-ReLU activations use "
        '--quant-levels levels (docs/model-card.md, "Quant-ReLU levels"). With burst neurons (the '
        "detector's default) the converted network runs one step per window at any number of levels.",
    )
    relevel.add_argument(
        "model", metavar="CKPT", help="checkpoint (name or path) with Quant-ReLU activations"
    )
    relevel.add_argument(
        "--quant-levels", type=int, required=True, metavar="L", help="levels of every Quant-ReLU"
    )
    relevel.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    relevel.set_defaults(func=run_relevel)


def register_eval(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval``: the model and splits, scoring options, sensor geometry, and with ``--snn`` the
    conversion and SNN measurement (``streamdet.cli.options.add_snn_arguments``)."""
    evaluate = subparsers.add_parser(
        "eval",
        help="COCO mAP of a detector on a test split",
        description="Score a detector (shipped name or checkpoint path) on built split(s) with pycocotools: "
        "mAP@0.5, mAP@[.5:.95], AP@0.5 per class.",
    )
    evaluate.add_argument(
        "--model", required=True, help="events-default, intensity-default or a checkpoint path"
    )
    evaluate.add_argument(
        "--data",
        required=True,
        action="append",
        metavar="SPLIT_DIR",
        help="split directory, e.g. data/test, or a dataset root holding one split",
    )
    evaluate.add_argument(
        "--format",
        default="split",
        choices=("split", "prophesee"),
        help="split: a built split; prophesee: a folder of *_bbox.npy + *_td.dat/.raw/.h5 recordings",
    )
    evaluate.add_argument(
        "--class-map",
        default=None,
        metavar="MAP",
        help="--format prophesee: gen1, 1mpx or ID=NAME,... (ID=ignore:NAME for ignore regions)",
    )
    evaluate.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate the first N images")
    evaluate.add_argument(
        "--modality", default=None, choices=("events", "intensity"), help="check the model's"
    )
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument(
        "--device", default=None, help="torch device (default cuda when available, else cpu)"
    )
    add_geometry_options(evaluate)
    if importlib.util.find_spec("streamdet.fidelity") is not None:
        from streamdet.cli.options import add_snn_arguments

        evaluate.add_argument("--snn", action="store_true", help="also convert to an SNN and score it")
        add_snn_arguments(evaluate)
        evaluate.add_argument(
            "--burst",
            choices=("on", "off"),
            default="off",
            help="burst IF neurons, up to N spikes per step with N = each Quant-ReLU's levels (on: one step "
            "reproduces a Quant-ReLU network), or plain IF neurons (off, the default)",
        )
    evaluate.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    """``streamdet train``."""
    import torch

    from streamdet.errors import UserFacingError
    from streamdet.train import AugmentConfig, TrainConfig, train_detector

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.modality is None and args.init is None:
        raise UserFacingError("train: give --modality (events or intensity), or --init a model to fine-tune")
    if args.distill_weight is not None and args.distill_from is None:
        raise UserFacingError("train: --distill-weight needs --distill-from (the teacher model)")
    defaults = TrainConfig()
    config = TrainConfig(
        modality=args.modality or defaults.modality,
        size=args.size or defaults.size,
        activation=args.activation or defaults.activation,
        quant_levels=defaults.quant_levels if args.quant_levels is None else args.quant_levels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        event_scale=defaults.event_scale if args.event_scale is None else args.event_scale,
        window_us=args.window_us,
        seed=args.seed,
        val_limit=args.val_limit,
        box_loss=args.box_loss,
        anchor_min_size=args.anchor_min_size,
        anchor_aspect_ratios=args.anchor_ratios,
        finest_stride=args.finest_stride,
        head_blocks=args.head_blocks,
        stage_channels=args.stage_channels,
        new_layer_lr=args.new_layer_lr,
        history_windows=args.history_windows,
        distill_from=args.distill_from,
        distill_weight=defaults.distill_weight if args.distill_weight is None else args.distill_weight,
        distill_data=tuple(dataset_root(text) for text in args.distill_data or ()),
        augment=AugmentConfig(
            crop_size=args.crop,
            noise_rate=args.aug_noise,
            noise_power=args.aug_noise_power,
            thinning=args.aug_thinning,
            hot_pixels=args.aug_hot_pixels,
            spike_noise=args.aug_spike_noise,
            illumination=args.aug_illumination,
            texture=args.aug_texture,
        ),
    )
    if args.init is not None:
        config = _recipe_of_init(config, args)
    record = train_detector(
        config,
        [dataset_root(text) for text in args.data],
        args.out,
        resume=args.resume,
        init=args.init,
        val_splits=args.val,
        device=args.device,
        progress=True,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {args.out} ({record.get('epochs', 0)} epochs, {record.get('seconds', 0)} s)")
    return 0


def _recipe_of_init(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """``config`` with the model's shape and input taken from ``--init`` where not given
    (``streamdet.train.recipe_from_init``); prints what was taken."""
    from streamdet.model import load_detector
    from streamdet.train import INHERITED_FROM_INIT, recipe_from_init

    given = {name for name in INHERITED_FROM_INIT if getattr(args, name) is not None}
    init = load_detector(args.init)
    inherited = recipe_from_init(config, init.config, init.spec, given, args.init)
    taken = [name for name in INHERITED_FROM_INIT if name not in given]
    if taken:
        options = " ".join(_as_option(name, getattr(inherited, name)) for name in taken)
        print(f"train: from --init {args.init}: {options} (give an option to change it)", flush=True)
    return inherited


def _as_option(name: str, value: object) -> str:
    """``window_us``, 100000 -> ``--window-us 100000`` (floats without trailing zeros)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"--{name.replace('_', '-')} {text}"


def run_average(args: argparse.Namespace) -> int:
    """``streamdet average``."""
    from streamdet.train import average_checkpoint_files

    average_checkpoint_files(args.models, args.out)
    print(f"wrote {args.out} (mean of {len(args.models)} checkpoints)")
    return 0


def run_relevel(args: argparse.Namespace) -> int:
    """``streamdet relevel``."""
    from streamdet.train import relevel_checkpoint_file

    relevelled = relevel_checkpoint_file(args.model, args.quant_levels, args.out)
    before = relevelled["train"]["relevelled_from"]["quant_levels"]
    print(f"wrote {args.out} ({args.model} with {args.quant_levels} Quant-ReLU levels instead of {before})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """``streamdet eval``."""
    import torch

    from streamdet.errors import UserFacingError
    from streamdet.evaluate import evaluate_prophesee_folder, evaluate_split
    from streamdet.model import load_detector

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bundle = load_detector(args.model, device=device)
    if args.modality is not None and args.modality != bundle.spec.modality:
        raise UserFacingError(
            f"modality mismatch: --modality {args.modality} but model {args.model} "
            f"takes {bundle.spec.modality} input"
        )
    geometry = geometry_from_args(args)
    results = []
    snn = None
    fidelity = fidelity_config_from_args(args) if getattr(args, "snn", False) else None
    if args.format == "prophesee" and (args.class_map is None or getattr(args, "snn", False)):
        raise UserFacingError("--format prophesee needs --class-map (gen1, 1mpx, ID=NAME,...) and no --snn")
    data = args.data if args.format == "prophesee" else [resolve_split(text) for text in args.data]
    for split_dir in data:
        if args.format == "prophesee":
            metrics = evaluate_prophesee_folder(
                bundle, split_dir, args.class_map, geometry, limit=args.limit, batch_size=args.batch_size
            )
        else:
            metrics = evaluate_split(
                bundle.detect, split_dir, bundle.spec, geometry, limit=args.limit, batch_size=args.batch_size
            )
        entry = {"data": str(split_dir), **metrics}
        if getattr(args, "snn", False):
            from streamdet.fidelity import evaluate_snn

            # one conversion serves every split when it is calibrated on a fixed split
            reuse = snn if fidelity.calibration_data else None
            entry["snn"], snn = evaluate_snn(
                bundle, Path(split_dir), fidelity, reuse, model_name=str(args.model), geometry=geometry
            )
            entry["snn_conversion"] = snn.conversion
        results.append(entry)
        per_class = " ".join(f"{name}={ap:.3f}" for name, ap in metrics["ap50_per_class"].items())
        print(
            f"{split_dir}: {metrics['images']} images ({metrics['window_us'] / 1000:g} ms windows"
            f"{', ' + metrics['geometry'] if 'geometry' in metrics else ''})  "
            f"mAP@0.5={metrics['map50']:.3f}  "
            f"mAP@[.5:.95]={metrics['map']:.3f}  AP@0.5 {per_class}"
        )
        if metrics.get("operating_points"):
            best = max(metrics["operating_points"], key=lambda point: point["f1"])
            print(
                f"  live operating point: best F1 {best['f1']:.3f} at score >= {best['score']:.2f} "
                f"(precision {best['precision']:.3f}, recall {best['recall']:.3f}; detect --min-score)"
            )
        for line in snn_score_lines(entry.get("snn", {})):
            print(line)
    summary = (
        {"model": str(args.model), **results[0]} if len(results) == 1 else _combined(args.model, results)
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def snn_score_lines(scores: dict[str, dict]) -> list[str]:
    """One terminal line per time step count ``T`` of ``streamdet.fidelity.evaluate_snn``'s result: the
    SNN's mAP@0.5 and mAP@[.5:.95], and after the transient where it was skipped too."""
    lines = []
    for steps, score in scores.items():
        figures = f"mAP@0.5={score['map50']:.3f}  mAP@[.5:.95]={score['map']:.3f}"
        if "transient_skipped" in score:
            skipped = score["transient_skipped"]
            figures += (
                f"  (first {skipped['skipped_steps']} steps skipped: mAP@0.5={skipped['map50']:.3f}  "
                f"mAP@[.5:.95]={skipped['map']:.3f})"
            )
        elif "skipped_steps" in score:
            figures += f"  (first {score['skipped_steps']} steps skipped)"
        lines.append(f"  SNN T={steps}: {figures}")
    return lines


def _combined(model: str, results: list[dict]) -> dict:
    """Several splits: the plain mean of the splits' figures (per class over the splits that have it), plus
    each split's own entry under ``splits``."""
    names = sorted({name for r in results for name in r["ap50_per_class"]})
    return {
        "model": str(model),
        "images": sum(r["images"] for r in results),
        "map50": sum(r["map50"] for r in results) / len(results),
        "map": sum(r["map"] for r in results) / len(results),
        "ap50_per_class": {
            name: sum(r["ap50_per_class"][name] for r in results if name in r["ap50_per_class"])
            / sum(1 for r in results if name in r["ap50_per_class"])
            for name in names
        },
        "splits": results,
    }
