import pytest

from newsloom.errors import SettingsError
from newsloom.settings import load_settings, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("1.5s", 1.5),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        (30, 30),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-3", "0", "1h 30", "m5", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_reads_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("NEWSLOOM_FETCH_TIMEOUT", "45s")
    monkeypatch.setenv("NEWSLOOM_ENTITY_LABELS", "person, gpe")
    monkeypatch.setenv("NEWSLOOM_SPACY_MODELS", "DE=de_core_news_sm, fr = fr_core_news_md,")
    settings = load_settings()
    assert settings.spacy_models == {"de": "de_core_news_sm", "fr": "fr_core_news_md"}
    assert settings.database_url == "postgresql://db/x"
    assert settings.fetch_timeout == 45
    assert settings.entity_labels == ("PERSON", "GPE")


@pytest.mark.parametrize(
    "var, value",
    [
        ("NEWSLOOM_FETCH_TIMEOUT", "soon"),
        ("NEWSLOOM_MAX_ATTEMPTS", "0"),
        ("NEWSLOOM_LOG_FORMAT", "xml"),
        ("NEWSLOOM_ALLOW_PRIVATE_NETWORKS", "perhaps"),
        ("NEWSLOOM_SPACY_MODELS", "de_core_news_sm"),
        ("NEWSLOOM_REFRESH_MIN_AGE", "later"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings()


def test_secret_from_file(monkeypatch, tmp_path):
    secret = tmp_path / "db"
    secret.write_text("postgresql://secret/db\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))
    assert load_settings().database_url == "postgresql://secret/db"


def test_missing_secret_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="REDIS_URL_FILE"):
        load_settings()


def test_retry_delay_must_fit_in_visibility_timeout(monkeypatch):
    monkeypatch.setenv("NEWSLOOM_RETRY_CAP", "2h")
    monkeypatch.setenv("NEWSLOOM_VISIBILITY_TIMEOUT", "1h")
    with pytest.raises(SettingsError, match="NEWSLOOM_VISIBILITY_TIMEOUT"):
        load_settings()
