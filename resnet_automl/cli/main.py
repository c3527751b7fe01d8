"""The `resnet-automl` command: argument parsing and error reporting only.

Each subcommand is a thin call into the package. Heavy modules (TensorFlow) are imported inside
the handlers so that `--help` and `--version` answer at once. Errors the user can fix exit with
status 2 and one paragraph on stderr; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys

from resnet_automl._version import __version__
from resnet_automl.cli.weights import add_weights_parser, run_weights_command
from resnet_automl.config.options import canonical_weights
from resnet_automl.config.schema import BOOL, BY_NAME, OPTIONS, Option
from resnet_automl.errors import ConfigError, ExportCheckError, ResNetAutoMLError
from resnet_automl.runtime.backend import BACKEND_CHOICES, choose_backend
from resnet_automl.runtime.run_folder import RUN_FILE

#: Exit statuses: bad input (an argument, the data, the run folder in use) ...
EXIT_USAGE = 2
#: ... an exported model that failed its check (moved aside; rerun to export again) ...
EXIT_EXPORT_CHECK = 3
#: ... and Ctrl-C (state saved; rerun to resume); SIGTERM and SIGHUP exit 128 + their number (143, 129).
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="Keras backend to train on (default auto: KERAS_BACKEND when set, else JAX where it "
                             "is measured faster: from random initialisation, the demo, a GPU with JAX's CUDA "
                             "plugin; else TensorFlow). Export always uses TensorFlow")


def _flag_type(option: Option):
    """argparse `type` of an option's flag: the schema's parse and check, its message as argparse's error."""
    def parse(text: str):
        try:
            return option.parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


#: The options of how a manifest is read that `evaluate` takes as well.
MANIFEST_FLAGS = ("path_column", "label_column", "label_delimiter", "allow_absolute_paths")


def _add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """`fit`'s arguments: the option flags come from the schema's fit and budget rows, the rest are
    about the run itself (data, run folder, recipe, backend, resuming, distributed tuning)."""
    parser.add_argument("data", nargs="?", default=None,
                        help="folder of class subfolders, a train/ val/ test/ tree, a .csv/.jsonl manifest "
                             "(one row per image: path,label[,split]), or tfds:NAME "
                             "(optional when the recipe's [data] section names a source)")
    parser.add_argument("--out", help=BY_NAME["out"].help)
    parser.add_argument("--recipe", help="recipe file (TOML) with fit options; flags override it "
                                          "(default: none)")
    for option in OPTIONS:
        if option.flag and option.owner in ("fit", "budget") and option.kind is BOOL:  # a switch: present is True
            parser.add_argument(option.flag, dest=option.dest, action="store_const", const=True, help=option.help)
        elif option.flag and option.owner in ("fit", "budget"):
            parser.add_argument(option.flag, dest=option.dest, type=_flag_type(option), choices=option.kind.choices,
                                help=option.help)
    _add_backend_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.add_argument("--chief", metavar="HOST:PORT",
                        help="distributed tuning: address of the chief's oracle (sets KERASTUNER_ORACLE_IP/PORT)")
    parser.add_argument("--worker-id", metavar="ID",
                        help="distributed tuning: 'chief' for the chief, a unique name per worker "
                             "(sets KERASTUNER_TUNER_ID)")


def _apply_distributed_flags(args) -> None:
    """Map --chief / --worker-id onto Keras Tuner's environment variables."""
    import os

    from resnet_automl.errors import ConfigError

    if getattr(args, "chief", None):
        host, _, port = args.chief.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--chief must be HOST:PORT, e.g. 10.0.0.5:8000. Received: {args.chief!r}")
        os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"] = host, port
    if getattr(args, "worker_id", None):
        os.environ["KERASTUNER_TUNER_ID"] = args.worker_id
    if "KERASTUNER_ORACLE_IP" in os.environ and "KERASTUNER_TUNER_ID" not in os.environ:
        raise ConfigError("Distributed tuning needs --worker-id (or KERASTUNER_TUNER_ID): 'chief' on the chief, "
                          "a unique name such as tuner0, tuner1 on each worker.")


def _jax_faster_on_cpu(args) -> bool:
    """Whether what this command trains was measured faster on JAX on a CPU (see `backend_choice`):
    a fit from random initialisation (`--weights none`, or its recipe's) and the demo."""
    if args.command == "demo":
        return True
    weights = args.weights
    if weights is None and args.recipe:
        from resnet_automl.config.recipes import load_recipe

        weights = load_recipe(args.recipe).get("train", {}).get("weights")
    return weights is not None and canonical_weights(weights) is None  # given, and "none"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `resnet-automl` command."""
    parser = argparse.ArgumentParser(
        prog="resnet-automl",
        description="Turn a folder of labelled images into a TF Serving-ready ResNet classifier.")
    parser.add_argument("--version", action="version", version=f"resnet-automl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser("fit", help="search, train, export and report on a dataset")
    _add_fit_arguments(fit)

    predict = commands.add_parser("predict", help="classify images with an exported model")
    predict.add_argument("model_dir", help="DIR/model, DIR/model/<version> or a run directory")
    predict.add_argument("images", nargs="+", metavar="INPUT",
                         help="image files, folders of images (recursive) or .txt files of image paths")
    predict.add_argument("--out", help="write one row per image to this .csv or .jsonl file (streamed in batches; "
                         "files that do not decode are listed with the reason and skipped)")
    predict.add_argument("--top-k", type=_positive_int, default=1, help="labels per image (default 1)")
    predict.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch (default 64)")
    predict.add_argument("--json", action="store_true", help="print JSON")

    evaluate = commands.add_parser("evaluate", help="evaluate an exported model on a labelled folder")
    evaluate.add_argument("model_dir", help="DIR/model, DIR/model/<version> or a run directory")
    evaluate.add_argument("data", help="folder of class subfolders, or a .csv/.jsonl manifest (all images are "
                                       "evaluated)")
    evaluate.add_argument("--out", help="report folder (default: evaluation-<data folder name> beside the model's "
                                         "version folders, i.e. DIR/model/evaluation-<name>)")
    for name in MANIFEST_FLAGS:  # how a manifest is read, as for fit (a multi-label model reads several labels)
        option = BY_NAME[name]
        kind = {"action": "store_const", "const": True} if option.kind is BOOL else {"type": _flag_type(option)}
        evaluate.add_argument(option.flag, dest=option.dest, help=option.help, **kind)

    export = commands.add_parser("export", help="write the SavedModel and other formats (LiteRT, ONNX) of a trained "
                                                f"run: resumes the fit in DIR/{RUN_FILE}")
    export.add_argument("run_dir", help="the run directory (the same dataset path must exist here)")
    export.add_argument("--format", dest="formats", type=_flag_type(BY_NAME["export_formats"]),
                        help="formats to add, comma-separated: savedmodel, litert, litert-int8, onnx (each written "
                             "under DIR/exports/<format>/ and checked on the test split; LiteRT and ONNX need "
                             "`pip install 'resnet-automl[edge]'`)")

    backbones = commands.add_parser("backbones", help="list the backbones and their costs")
    backbones.add_argument("--json", action="store_true", help="print JSON")

    add_weights_parser(commands)

    demo = commands.add_parser("demo", help="fit on the bundled Fashion-MNIST sample")
    demo.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    demo.add_argument("--minutes", type=_positive_float, default=6.0, help="time budget (default 6)")
    demo.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    demo.add_argument("--export-formats", dest="export_formats", type=_flag_type(BY_NAME["export_formats"]),
                      default=("savedmodel",), help=BY_NAME["export_formats"].help)
    _add_backend_argument(demo)
    return parser


def _cmd_backbones(args) -> int:
    from resnet_automl.backbones import list_backbones

    rows = list_backbones()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<18}{'block':<11}{'depths':<14}{'params':>12}{'GFLOPs':>8}{'top-1':>7}  weights"
    print(header)
    for row in rows:
        print(f"{row['name']:<18}{row['block']:<11}{str(tuple(row['depths'])):<14}"
              f"{row['params']:>12,}{row['gflops_224']:>8.2f}{row['imagenet_top1'] or 0:>7.1f}  "
              f"{row['weights_source']}")
    return 0


def _cmd_fit(args) -> int:
    from resnet_automl.config.recipes import resolve_cli_options
    from resnet_automl.pipeline.fit import fit

    _apply_distributed_flags(args)
    data, out, options, budget = resolve_cli_options(args)
    result = fit(data, out=out, budget=budget, overwrite=args.overwrite, verbose=1, recipe=args.recipe, **options)
    if result.model is None:  # a distributed worker: the chief trains, exports and reports
        print(f"worker done: ran trials in {result.paths['run_dir']}")
        return 0
    from resnet_automl.report.build import headline

    print(f"done: {headline(result.report)}; model {result.paths['version_dir']}; "
          f"report {result.paths['report_html']}")
    return 0


def _cmd_export(args) -> int:
    from resnet_automl.pipeline.fit import export_run

    result = export_run(args.run_dir, formats=args.formats)
    files = "".join(f"; {name} {path}" for name, path in result.paths.get("exports", {}).items())
    print(f"model {result.paths['version_dir']}{files}; report {result.paths['report_html']}")
    return 0


def _cmd_demo(args) -> int:
    from resnet_automl.pipeline.demo import run_demo

    result = run_demo(out=args.out, minutes=args.minutes, overwrite=args.overwrite, export_formats=args.export_formats)
    print(f"demo done: test accuracy {result.report['accuracy']:.3f} on {result.report['num_test_images']} "
          f"images; model {result.paths['version_dir']}; report {result.paths['report_html']}")
    return 0


def _cmd_predict(args) -> int:
    from resnet_automl.serving.inference.batch_predict import (
        batched,
        check_output,
        iter_image_paths,
        predict_to_file,
        print_progress,
    )
    from resnet_automl.serving.inference.predictor import load_model

    if args.out:
        check_output(args.out)  # a wrong suffix or folder fails before the model loads
        predictor = load_model(args.model_dir)
        summary = predict_to_file(predictor, args.images, args.out, top_k=args.top_k, batch_size=args.batch_size,
                                  progress=print_progress())
        skipped = f"; {summary.skipped} skipped (not decodable, listed with the reason)" if summary.skipped else ""
        print(f"{summary.predicted} images predicted{skipped}: {summary.out}")
        return 0
    predictor = load_model(args.model_dir)
    images = [str(path) for path in iter_image_paths(args.images)]
    results = [result for batch in batched(images, args.batch_size)
               for result in predictor.predict(batch, top_k=args.top_k)]
    if args.json:
        rows = [{"image": image, **result} for image, result in zip(images, results, strict=True)]
        print(json.dumps(rows, indent=2))
    else:
        for image, result in zip(images, results, strict=True):
            ranked = ", ".join(f"{label} {score:.3f}"
                               for label, score in zip(result["labels"], result["scores"], strict=True))
            print(f"{image}: {ranked}")
    return 0


def _cmd_evaluate(args) -> int:
    from resnet_automl.pipeline.evaluate import evaluate_exported
    from resnet_automl.report.build import headline

    report = evaluate_exported(args.model_dir, args.data, out=args.out,
                               columns={name: getattr(args, BY_NAME[name].dest) for name in MANIFEST_FLAGS})
    print(f"{headline(report).removeprefix('test ')} on {report['num_test_images']} images; report in "
          f"{report['paths']['html']}")
    return 0


HANDLERS = {"fit": _cmd_fit, "export": _cmd_export, "demo": _cmd_demo, "predict": _cmd_predict,
            "evaluate": _cmd_evaluate, "backbones": _cmd_backbones, "weights": run_weights_command}


def main(argv: list | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from resnet_automl.runtime import console, quiet

    quiet.set_enabled(not args.debug)  # the command owns its process: library noise filtered throughout
    try:
        if hasattr(args, "backend"):  # training commands choose before anything imports Keras
            choose_backend(args.backend, jax_faster_on_cpu=_jax_faster_on_cpu(args))
        with console.log_to_console(1):  # the package's messages, one line each, on stdout
            return HANDLERS[args.command](args)
    except ResNetAutoMLError as exc:
        if args.debug:
            if getattr(exc, "details", None):  # a child process's own traceback
                print(exc.details, file=sys.stderr)
            raise
        print(f"resnet-automl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_CHECK if isinstance(exc, ExportCheckError) else EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP as `interrupts.StopRequested`
        if args.debug:
            raise
        name = getattr(exc, "signal_name", "SIGINT")
        print(f"resnet-automl {args.command}: stopped by {name}. State is saved; rerun the same command "
              "to resume.", file=sys.stderr)
        return getattr(exc, "exit_status", EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
