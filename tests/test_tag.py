import os

import pytest

from newsloom.errors import SettingsError
from newsloom.settings import DEFAULT_ENTITY_LABELS
from newsloom.worker.tag import load_model, normalise_name, tag


@pytest.fixture(scope="module")
def nlp():
    return load_model(os.environ["NEWSLOOM_SPACY_MODEL"])


@pytest.mark.parametrize(
    "raw, name",
    [
        ("Erdogan’s", "Erdogan"),
        ("the United Nations", "United Nations"),
        ("  Iraq\n", "Iraq"),
        ("Turkey's", "Turkey"),
        ("The Hague", "Hague"),
    ],
)
def test_normalise_name(raw, name):
    assert normalise_name(raw) == name


def test_entities_counted_and_filtered(nlp):
    [entities] = tag(
        nlp,
        [
            "Iraq and Iran met in Baghdad on Monday. Iraq's president Erdogan spoke. "
            "Turkey's Erdogan said 3 things."
        ],
        DEFAULT_ENTITY_LABELS,
    )
    found = {(name, label): count for name, label, count in entities}
    assert found[("Iraq", "GPE")] == 2
    assert ("Erdogan", "PERSON") in found
    assert not any(label in ("DATE", "CARDINAL") for _, label, _ in entities)


def test_batch_gives_one_result_per_text(nlp):
    results = tag(
        nlp, ["Paris is in France.", "", "Angela Merkel visited Berlin."], ["GPE", "PERSON"]
    )
    assert len(results) == 3
    assert ("France", "GPE", 1) in results[0]
    assert results[1] == []
    assert ("Angela Merkel", "PERSON", 1) in results[2]


def test_unknown_model_is_a_settings_error():
    with pytest.raises(SettingsError, match="NEWSLOOM_SPACY_MODEL"):
        load_model("no_such_model_xyz")


def test_french_articles_get_the_french_model_and_common_labels():
    from newsloom.settings import Settings
    from newsloom.worker.tag import Models

    models = Models(
        os.environ["NEWSLOOM_SPACY_MODEL"], Settings.model_fields["spacy_models"].default
    )
    nlp = models.for_language("fr")
    assert nlp is not None and nlp.lang == "fr"
    [entities] = tag(
        nlp,
        ["Emmanuel Macron a rencontré Angela Merkel à Berlin mardi, selon l'Agence France-Presse."],
        DEFAULT_ENTITY_LABELS,
    )
    assert ("Emmanuel Macron", "PERSON", 1) in entities and ("Berlin", "LOC", 1) in entities
    assert models.for_language("es") is None  # no model: stored without entities
