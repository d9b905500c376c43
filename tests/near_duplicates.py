"""The labelled near-duplicate set: the story corpus in fixtures/stories, plus syndicated
copies made from each story by the light edits newsrooms make.

Every pair of distinct stories is a negative: the corpus groups supply the hard ones
(independent write-ups of one event, templated reports, newsletter installments sharing
their intro and sign-off, follow-ups repeating background paragraphs). Each copy is a
positive with the story it was made from.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

STORIES = Path(__file__).parent / "fixtures" / "stories"
OUTLETS = ("The Harbour Gazette", "Valley Courier", "Northern Echo Online", "Metro Wire")


@dataclass(frozen=True)
class Story:
    key: str  # "group/index"
    kind: str  # the corpus group's kind, or "copy"
    title: str
    paragraphs: tuple[str, ...]
    source: str | None = None  # the story a copy was made from
    edit: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


def corpus() -> list[Story]:
    stories = []
    for path in sorted(STORIES.glob("*.json")):
        group = json.loads(path.read_text())
        for i, story in enumerate(group["stories"]):
            stories.append(
                Story(f"{path.stem}/{i}", group["kind"], story["title"], tuple(story["paragraphs"]))
            )
    return stories


def _typos(rng: random.Random, paragraphs: list[str], share: float) -> list[str]:
    """Change `share` of the words: a dropped letter, a swapped pair, a synonym-sized slip."""
    words = [p.split(" ") for p in paragraphs]
    spots = [(i, j) for i, p in enumerate(words) for j, w in enumerate(p) if len(w) > 3]
    for i, j in rng.sample(spots, max(1, int(len(spots) * share))):
        w, k = words[i][j], rng.randrange(1, len(words[i][j]) - 1)
        words[i][j] = rng.choice(
            [w[:k] + w[k + 1 :], w[: k - 1] + w[k] + w[k - 1] + w[k + 1 :], w.upper(), w + "s"]
        )
    return [" ".join(p) for p in words]


def _restyle(paragraphs: list[str]) -> list[str]:
    """House style of another outlet: straight quotes, -ize spellings, 'percent', short
    paragraphs merged."""
    out = []
    for paragraph in paragraphs:
        p = re.sub(r"[‘’]", "'", re.sub(r"[“”]", '"', paragraph))
        p = re.sub(r"(\w)is(e[sd]?|ing)\b", r"\1iz\2", p.replace("per cent", "percent"))
        if out and len(out[-1]) < 200:
            out[-1] += " " + p
        else:
            out.append(p)
    return out


def _copy(rng: random.Random, story: Story, edit: str) -> Story:
    paragraphs = list(story.paragraphs)
    outlet = rng.choice(OUTLETS)
    if edit == "credit":  # republished as is, with the agency's credit
        paragraphs.append(
            f"This article originally appeared in {outlet} and is republished with permission."
        )
    elif edit == "typos":  # retyped or lightly corrected
        paragraphs = _typos(rng, paragraphs, 0.03)
    elif edit == "trim":  # cut from the bottom to fit
        paragraphs = paragraphs[:-1] if len(paragraphs) >= 5 else paragraphs
        paragraphs[-1] += " More details are expected later."
    elif edit == "local":  # a paragraph of local context added
        paragraphs.insert(
            rng.randrange(1, len(paragraphs)),
            f"Readers of {outlet} in the area can expect further coverage "
            "as the story develops, our correspondent added.",
        )
    elif edit == "restyle":
        paragraphs = _restyle(paragraphs)
    elif edit == "noise":  # the extractor kept a caption and an ad label on this site
        paragraphs.insert(1, f"Photo: {outlet} / file picture")
        paragraphs.insert(rng.randrange(2, len(paragraphs) + 1), "Advertisement")
    elif edit == "mixed":  # credit, house style and a few slips together
        paragraphs = _typos(rng, _restyle(paragraphs), 0.01)
        paragraphs.append(f"Additional reporting by {outlet}.")
    return Story(
        f"{story.key}~{edit}",
        "copy",
        f"{story.title} | {outlet}",
        tuple(paragraphs),
        source=story.key,
        edit=edit,
    )


EDITS = ("credit", "typos", "trim", "local", "restyle", "noise")


def copies(stories: list[Story]) -> list[Story]:
    """Two copies of each story: one light edit, and all of them mixed."""
    rng = random.Random(20261126)
    return [c for s in stories for c in (_copy(rng, s, rng.choice(EDITS)), _copy(rng, s, "mixed"))]


def labelled_pairs(stories: list[Story], made: list[Story]) -> list[tuple[Story, Story, bool]]:
    """The pairs the README counts: every copy with its source (near-duplicates), and every
    pair of stories in one corpus group (distinct but similar)."""
    by_key = {s.key: s for s in stories}
    positives = [(by_key[c.source], c, True) for c in made]
    groups: dict[str, list[Story]] = {}
    for s in stories:
        groups.setdefault(s.key.split("/")[0], []).append(s)
    negatives = [(a, b, False) for members in groups.values() for a, b in combinations(members, 2)]
    return positives + negatives
