"""What every command shares: the parent parser of the options they all take, the flags
generated from the configuration, reading input files and writing output."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Sequence

from ..api import load
from ..config import SECTIONS, Config
from ..corpus_files import read_numbered
from ..errors import SeqVAEError
from ..files import atomic_write
from ..logs import to_stderr
from ..pretrained import is_shipped, resolve

# Flags whose names differ from their config field (the rest are --field-name).
FLAG_NAMES = {("data", "source"): "data", ("tokenizer", "kind"): "tokenizer"}
SHORT_HELP = {"data": "corpus and splits", "tokenizer": "tokenizer", "model": "architecture",
              "objective": "objective and KL schedule", "train": "optimisation and run length"}
# Inputs larger than this get a progress bar.
PROGRESS_FROM = 5000


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except where there is nothing to say (``None``,
    an off switch) or the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def device_options() -> argparse.ArgumentParser:
    """The parent parser of every command: where it runs."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return parent


def checkpoint_options() -> argparse.ArgumentParser:
    """The parent parser of the commands that work on a trained model: the checkpoint and
    the device."""
    parent = argparse.ArgumentParser(add_help=False, parents=[device_options()])
    parent.add_argument("checkpoint", type=model_file, metavar="MODEL",
                        help="a shipped model's name (see `seqvae models`; a bare name always "
                             "means the shipped model, so write ./NAME for a local folder of "
                             "that name), a run folder written by seqvae train, or a checkpoint "
                             "file (DIR/model.pt); a shipped file's checksum is checked either way")
    return parent


def decoding_options() -> argparse.ArgumentParser:
    """The parent parser of the commands that decode: the checkpoint, the device and whether
    a SMILES model decodes under its grammar and valences."""
    parent = argparse.ArgumentParser(add_help=False, parents=[checkpoint_options()])
    parent.add_argument("--no-constraints", dest="constrained", action="store_false",
                        help="SMILES models: decode without the grammar and valence mask. By "
                             "default every decode rules out the tokens after which no "
                             "well-formed SMILES could be finished (open rings, unbalanced "
                             "branches, dangling bonds) and the bonds that would exceed an "
                             "atom's valence; aromaticity is not checked either way")
    return parent


def add_beam_size_option(parser: argparse.ArgumentParser, method_flag: str) -> None:
    """``--beam-size`` for the beam decodings that ``method_flag`` (--decode, --method) names;
    check it with :func:`check_beam_size`."""
    parser.add_argument("--beam-size", type=int, default=None,
                        help=f"for {method_flag} beam (default 5) and rerank (default 20)")


def check_beam_size(args: argparse.Namespace) -> None:
    if args.beam_size is not None and args.beam_size < 1:
        raise SeqVAEError("--beam-size must be at least 1")


def add_prior_option(parser: argparse.ArgumentParser) -> None:
    """``--prior``, for the commands that draw codes from the prior."""
    parser.add_argument("--prior", choices=("auto", "fitted", "standard"), default="auto",
                        help="what prior codes are drawn from (and, for optimize, what "
                             "log p(z) is): the flow, mixture or diffusion model that `seqvae "
                             "fit-prior` fitted to the training codes (fitted), N(0, I) "
                             "(standard), or the first where the model has one (auto)")


def load_model(args: argparse.Namespace, path: Path | None = None):
    """The model a command works on (``args.checkpoint`` unless ``path`` is given), on
    ``--device``, decoding under the SMILES grammar unless ``--no-constraints``, sampling from
    the ``--prior`` asked for, in the ``--precision`` asked for (auto where a command has none)."""
    return load(path or args.checkpoint, device=args.device,
                constrained=getattr(args, "constrained", True),
                prior=getattr(args, "prior", "auto"),
                precision=getattr(args, "precision", "auto"))


def model_file(text: str) -> Path:
    """argparse type of MODEL: the checkpoint file a name, folder or file stands for."""
    try:
        return resolve(text)
    except SeqVAEError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def beside(checkpoint: Path) -> Path:
    """The folder for a command's default output files: the checkpoint's run folder, or the
    current folder for a shipped model (its folder belongs to the installed package)."""
    return Path.cwd() if is_shipped(checkpoint) else checkpoint.parent


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _converter(type_name: str):
    """argparse type for a config field annotated like 'int', 'float | None', 'str'."""
    parts = [p.strip() for p in type_name.split("|")]
    optional = "None" in parts
    base = {"int": int, "float": float, "str": str, "bool": _parse_bool}[
        next(p for p in parts if p != "None")]

    def convert(text: str) -> Any:
        if optional and text.lower() in ("none", "null", ""):
            return None
        return base(text)
    convert.__name__ = base.__name__  # argparse names the type in its error messages
    return convert


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults are suppressed so only given flags override."""
    defaults = Config()
    for section in SECTIONS:
        group = parser.add_argument_group(f"{section} ({SHORT_HELP[section]})")
        for f in dataclasses.fields(getattr(defaults, section)):
            if not f.metadata["flag"]:
                continue
            name = FLAG_NAMES.get((section, f.name), f.name.replace("_", "-"))
            kwargs: dict[str, Any] = dict(
                dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                type=_converter(str(f.type)), choices=f.metadata["choices"],
                metavar=None if f.metadata["choices"] else f.name.upper(),
                help=f"{f.metadata['help']} (default {f.default!r})")
            if str(f.type) == "bool":
                kwargs.update(nargs="?", const=True, metavar="BOOL")
            group.add_argument(f"--{name}", **kwargs)


def config_from_args(args: argparse.Namespace, base: Config) -> Config:
    """Apply the config flags that were given on top of ``base``.

    Two flags mean what they say whatever the preset holds: ``--max-steps N`` without
    ``--epochs`` runs N steps (the preset's epoch count no longer cuts it short), and a model
    without a latent has no rate to hold (``--target-kl`` together with ``--latent-dim 0`` is
    refused; the preset's target is dropped).
    """
    given = {key for key in vars(args) if "." in key}
    for key in given:
        section, name = key.split(".", 1)
        base = base.override(section, **{name: getattr(args, key)})
    if "train.max_steps" in given and "train.epochs" not in given \
            and base.train.max_steps is not None:
        base = base.override("train", epochs=None)
    if base.model.latent_dim == 0:
        if "objective.target_kl" in given and base.objective.target_kl > 0:
            raise SeqVAEError("--target-kl holds the information in the code z, and a model "
                              "without a latent (--no-latent, --latent-dim 0) has none; drop one "
                              "of the two")
        base = base.override("objective", target_kl=0.0)
    return base


def read_inputs(vae, args: argparse.Namespace) -> list[str]:
    """The usable lines of the input file; unusable ones stop the command, or with
    --skip-invalid are skipped and counted."""
    numbered = read_numbered(args.file, column=args.column)
    texts, lines = numbered.sequences, numbered.line_numbers
    bad = vae.problems(texts)
    if bad and not args.skip_invalid:
        i, reason = next(iter(bad.items()))
        raise SeqVAEError(f"{args.file}: line {lines[i]} ({texts[i]!r}) is {reason}; fix it, or "
                          f"pass --skip-invalid to skip such lines ({len(bad)} in all)")
    if bad:
        shown = ", ".join(str(lines[i]) for i in list(bad)[:10])
        err(f"seqvae: skipped {len(bad)} unusable lines of {args.file} (lines {shown}"
             + (", ..." if len(bad) > 10 else "") + ")")
        texts = [t for i, t in enumerate(texts) if i not in bad]
    if numbered.blank:
        err(f"seqvae: skipped {numbered.blank} blank lines of {args.file}")
    if not texts:
        raise SeqVAEError(f"{args.file}: no usable lines left to work on")
    unknown = [i for i, n in enumerate(vae.unknown_tokens(texts)) if n]
    if unknown:
        err(f"seqvae: note: {len(unknown)} inputs contain tokens the model never saw in "
             f"training; they are read as <unk> (e.g. {texts[unknown[0]]!r})")
    return texts


def note_unknown(vae, texts: Sequence[str]) -> None:
    """Say which inputs have tokens outside the vocabulary (they are read as <unk>)."""
    for text, count in zip(texts, vae.unknown_tokens(texts)):
        if count:
            err(f"seqvae: note: {count} token(s) of {text!r} are outside the model's vocabulary "
                 "and are read as <unk>" + (" (the vocabulary is lower-case)"
                                            if text != text.lower() and lowercase_vocab(vae) else ""))


def lowercase_vocab(vae) -> bool:
    tokens = getattr(vae.tokenizer, "tokens", None) or []
    return bool(tokens) and all(t == t.lower() for t in tokens if not t.startswith("<"))


def write_lines(lines: Sequence[str], path: Path | None) -> None:
    if path is None:
        for line in lines:
            print(line)
    else:
        with atomic_write(path, "w") as fh:       # makes the folder; no half-written file
            fh.write("".join(f"{line}\n" for line in lines))
        err(f"seqvae: wrote {len(lines)} lines to {path}")


# The CLI's name for the library's one stderr writer.
err = to_stderr
