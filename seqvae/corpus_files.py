"""Reading corpus files: the :class:`Corpus` type, line and CSV readers, kind sniffing, and the
fingerprints and split checks that every corpus loader shares."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rdkit import Chem, RDLogger

from .config import DataConfig
from .errors import SeqVAEError

EMBEDDED = ("ptb", "brown", "moses")


@dataclass(frozen=True)
class Corpus:
    name: str                     # "moses", "ptb", or the file's name
    kind: str                     # "smiles" | "text"
    splits: dict[str, list[str]]  # "train", "valid", "test" (moses also "test_scaffolds")
    fingerprint: str              # cache key: content identity + split settings
    split_note: str               # one human line on where the splits came from
    blank_lines: int = 0          # blank lines skipped while reading


def read_sequences(path: str | Path, column: str | None = None) -> list[str]:
    """The non-blank, stripped lines of a text file, or one column of a CSV (``.gz`` or not)."""
    return read_numbered(path, column).sequences


@dataclass(frozen=True)
class NumberedLines:
    sequences: list[str]    # stripped, non-blank
    line_numbers: list[int]  # 1-based line of each sequence in the file
    blank: int              # blank lines (or empty CSV cells) skipped


def read_numbered(path: str | Path, column: str | None = None) -> NumberedLines:
    """Like :func:`read_sequences`, keeping each sequence's line number for messages."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SeqVAEError(f"{path} {what}; give a text file with one sequence per line, "
                          f"or one of the embedded corpora: {', '.join(EMBEDDED)}")
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise SeqVAEError(f"{path}: cannot read it ({e}); check that it is a readable "
                          "file (and a valid gzip file if it ends in .gz)") from None
    if b"\x00" in data[:1 << 20]:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise SeqVAEError(f"{path}: line {line} holds a NUL byte: this looks like a binary file, "
                          "not text; give a UTF-8 text file with one sequence per line")
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM would otherwise stick to the first sequence
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SeqVAEError(f"{path}: line {line} is not UTF-8 text; give a UTF-8 text file "
                          "(re-encode it, e.g. with iconv -t UTF-8)") from None
    stem = path.name.lower().removesuffix(".gz")
    if column is not None or stem.endswith(".csv"):
        numbered = _csv_column(text, column, path)
    else:
        # split("\n"), not splitlines(): the latter also breaks on \x0c, \u2028 and friends.
        numbered = [(i, line.strip()) for i, line in enumerate(text.split("\n"), start=1)]
    kept = [(i, s) for i, s in numbered if s]
    if not kept:
        raise SeqVAEError(f"{path}: no sequences (the file is empty or has only blank lines); "
                          "give a file with one sentence or SMILES per line")
    # A trailing newline leaves one empty "line" after it; that is not a blank line.
    blank = len(numbered) - len(kept) - (1 if text.endswith("\n") else 0)
    return NumberedLines([s for _, s in kept], [i for i, _ in kept], max(blank, 0))


def _csv_column(text: str, column: str | None, path: Path) -> list[tuple[int, str]]:
    """(line number, stripped cell) for each data row of a CSV's chosen column."""
    lines = text.split("\n")
    try:
        header = next(csv.reader(lines[:1]), [])
    except csv.Error as e:  # e.g. a stray carriage return inside the header line
        raise SeqVAEError(f"{path}: line 1 is not a valid CSV header ({e}); give a plain text "
                          "file with one sequence per line, or fix the header") from None
    header = [h.strip() for h in header]
    if column is None:
        picks = [c for c in ("SMILES", "smiles") if c in header]
        if picks:
            column = picks[0]
        elif len(header) == 1:
            column = header[0]
        else:
            raise SeqVAEError(f"{path}: which CSV column holds the sequences? Choose one with "
                              f"--column; the columns are: {', '.join(header) or '(none)'}")
    if column not in header:
        raise SeqVAEError(f"{path}: no CSV column {column!r}; the columns are: "
                          f"{', '.join(header) or '(none)'}")
    i = header.index(column)
    if '"' in text:
        rows = csv.reader(io.StringIO(text), strict=True)
        try:
            next(rows)
            return [(rows.line_num, (row[i] if i < len(row) else "").strip()) for row in rows]
        except csv.Error as e:
            raise SeqVAEError(f"{path}: line {rows.line_num} is not valid CSV ({e}); check its "
                              "quotes, or give a plain text file with one sequence per line") from None
    # Without quotes a CSV row is just comma-separated; this is ~5x faster than the csv
    # module, which matters for the 1.58M-row MOSES train file.
    return [(n, (parts[i] if i < len(parts) else "").strip())
            for n, parts in enumerate((line.split(",") for line in lines[1:]), start=2)]


def sniff_kind(lines: Sequence[str]) -> str:
    """``"smiles"`` if 90% of the first 1,000 lines are space-free valid SMILES, else ``"text"``."""
    sample = [s for s in lines[:1000] if s.strip()]
    if not sample:
        return "text"
    RDLogger.DisableLog("rdApp.*")  # every text line would otherwise print a parse error
    good = sum(1 for s in sample
               if not any(c.isspace() for c in s.strip()) and Chem.MolFromSmiles(s.strip()))
    return "smiles" if good >= 0.9 * len(sample) else "text"


def fingerprint(**parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def check_fractions(config: DataConfig) -> None:
    vf, tf = config.valid_fraction, config.test_fraction
    if not (0 <= vf < 1 and 0 <= tf < 1 and vf + tf < 1):
        raise SeqVAEError(f"valid_fraction ({vf}) and test_fraction ({tf}) must be in [0, 1) "
                          "and leave some data for training")
