import pytest

from newsloom.errors import FeedsFileError
from newsloom.scheduler.feedsfile import FeedConfig, load_feeds


def write(tmp_path, text, name="feeds.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml(tmp_path):
    path = write(
        tmp_path,
        """
[defaults]
interval = "10m"

[[feed]]
url = "https://example.org/rss.xml"
name = "Example"
interval = "5m"

[[feed]]
url = "https://example.net/atom"
""",
    )
    assert load_feeds(path) == [
        FeedConfig("https://example.org/rss.xml", "Example", 300),
        FeedConfig("https://example.net/atom", None, 600),
    ]


def test_politeness_keys(tmp_path):
    path = write(
        tmp_path,
        """
[defaults]
host_delay = "2s"

[[feed]]
url = "https://mine.example/rss"
host_delay = "0s"
robots = false

[[feed]]
url = "https://theirs.example/rss"
""",
    )
    mine, theirs = load_feeds(path)
    assert (mine.host_delay, mine.robots) == (0, False)
    assert (theirs.host_delay, theirs.robots) == (2, True)


def test_default_interval_without_defaults(tmp_path):
    path = write(tmp_path, '[[feed]]\nurl = "https://example.org/rss"\n')
    assert load_feeds(path, default_interval=120)[0].interval == 120


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ('[[feed]]\nurl = "https://a.org/rss"\nnmae = "typo"\n', 3, "unknown key 'nmae'"),
        (
            '[[feed]]\nurl = "https://a.org/rss"\n\n[[feed]]\nurl = "ftp://b.org/rss"\n',
            5,
            "only http and https",
        ),
        ('[[feed]]\nurl = "https://a.org/rss"\n\n[[feed]]\nurl = "not a url"\n', 5, "bad url"),
        ('[[feed]]\nname = "no url"\n', 1, "without url"),
        ('[[feed]]\nurl = "https://a.org/rss"\ninterval = "often"\n', 3, "bad interval"),
        ('[defaults]\ninterval = "5m"\ncolour = "red"\n', 3, "unknown key 'colour'"),
        ('[[feed]]\nurl = "https://a.org/rss"\nrobots = "no"\n', 3, "robots must be true or false"),
        ('[defaults]\nhost_delay = "soon"\n', 2, "bad host_delay"),
        ('[[feed]]\nurl = "https://a.org/rss"\n[extra]\nx = 1\n', 3, "unknown key 'extra'"),
        ('[[feed]]\nurl = "https://a.org/rss"\nname = "A\n', 3, "invalid TOML"),
        (
            '[[feed]]\nurl = "https://a.org/rss"\n[[feed]]\nurl = "https://a.org/rss"\n',
            4,
            "listed twice",
        ),
        ("[[feed]]\nurl = 5\n", 2, "must be a non-empty string"),
    ],
)
def test_bad_toml_names_file_line_and_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(FeedsFileError) as caught:
        load_feeds(path)
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(FeedsFileError, match=r"copy feeds\.example\.toml"):
        load_feeds(tmp_path / "absent.toml")


OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="Example" title="Example" xmlUrl="https://example.org/rss.xml" htmlUrl="https://example.org/"/>
      <outline type="rss" text="Other" xmlUrl="https://other.org/feed"/>
    </outline>
    <outline text="Again">
      <outline type="rss" text="Example" xmlUrl="https://example.org/rss.xml"/>
    </outline>
  </body>
</opml>
"""


def test_opml(tmp_path):
    path = write(tmp_path, OPML, "subs.opml")
    assert load_feeds(path, default_interval=900) == [
        FeedConfig("https://example.org/rss.xml", "Example", 900),
        FeedConfig("https://other.org/feed", "Other", 900),
    ]


def test_bad_opml(tmp_path):
    path = write(
        tmp_path,
        OPML.replace('xmlUrl="https://other.org/feed"', 'xmlUrl="javascript:x"'),
        "subs.opml",
    )
    with pytest.raises(FeedsFileError) as caught:
        load_feeds(path)
    assert caught.value.line == 7


def test_malformed_opml(tmp_path):
    path = write(tmp_path, "<opml><body><outline></body></opml>", "subs.opml")
    with pytest.raises(FeedsFileError, match="invalid OPML"):
        load_feeds(path)
