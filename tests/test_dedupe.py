from newsloom.worker.dedupe import (
    article_keys,
    canonical_url,
    content_hash,
    jaccard,
    lsh_bands,
    minhash,
    normalize_url,
    shingles,
)


def test_tracking_parameters_fragment_case_and_port_removed():
    assert (
        normalize_url("HTTP://News.Example.org:80/a/story?utm_source=rss&utm_medium=x&id=7#top")
        == "http://news.example.org/a/story?id=7"
    )


def test_canonical_on_same_site_wins():
    assert (
        canonical_url("https://www.example.org/amp/story?utm_campaign=x", "/story")
        == "https://www.example.org/story"
    )
    assert (
        canonical_url("https://example.org/a", "https://www.example.org/b")
        == "https://www.example.org/b"
    )


def test_canonical_on_another_site_is_ignored():
    assert (
        canonical_url("https://example.org/a?fbclid=1", "https://aggregator.com/a")
        == "https://example.org/a"
    )


def test_garbage_canonical_is_ignored():
    assert canonical_url("https://example.org/a", "javascript:void(0)") == "https://example.org/a"


def test_content_hash_ignores_case_and_spacing_only():
    assert content_hash("Iraq and  Iran\nhold drills.") == content_hash(
        "iraq and iran hold drills."
    )
    assert content_hash("Iraq and Iran hold drills.") != content_hash("Iraq and Iran held drills.")


def test_keys():
    keys = article_keys("https://example.org/a?utm_source=x", None, "Text")
    assert keys.canonical_url == "https://example.org/a"
    assert keys.content_hash == content_hash("text")


def test_lsh_bands_agree_across_processes():
    """Workers on other hosts must compute the same keys for the same text."""
    import subprocess
    import sys

    text = "Iraq, Iran and Turkey are forming a united military front against secessionism."
    code = (
        "from newsloom.worker.dedupe import lsh_bands, minhash, shingles; "
        f"print(lsh_bands(minhash(shingles({text!r}))))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{lsh_bands(minhash(shingles(text)))}\n"}


def test_near_duplicate_rule():
    story = " ".join(f"word{i}" for i in range(200))
    edited = story.replace("word50", "changed").replace("word120", "altered") + " credit line"
    other = " ".join(f"word{i}" for i in range(100)) + " " + " ".join(f"new{i}" for i in range(100))
    assert jaccard(shingles(story), shingles(edited)) > 0.85
    assert jaccard(shingles(story), shingles(other)) < 0.5
    assert set(lsh_bands(minhash(shingles(story)))) & set(lsh_bands(minhash(shingles(edited))))
    assert lsh_bands(minhash(shingles(""))) == lsh_bands(minhash(frozenset())) == []


def test_unspaced_scripts_shingle_by_character():
    text = "东京电力公司周二表示，福岛第一核电站的处理水排放将持续到本月底。官员说监测结果正常。"
    edited = text.replace("周二", "周三")
    assert len(shingles(text)) > 30
    assert 0.6 < jaccard(shingles(text), shingles(edited)) < 1
    assert shingles("Iraq and Iran hold joint drills") == shingles(
        "iraq, and IRAN hold joint drills!"
    )
