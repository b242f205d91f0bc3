"""``builtin:teddy`` — GENERATED NER sentences where the right-hand context decides the tag.

The lecture's example of why a tagger needs the words *after* a word::

    He said, "Teddy bears are on sale!"                  Teddy = O (part of a common noun)
    He said, "Teddy Roosevelt was a great President!"    Teddy = B-PER

Sentences are generated from templates written for this project, filled with real names:

- first and last names: the US Census 1990 name frequency files shipped in the ``names``
  package (``dist.male.first``, ``dist.female.first``, ``dist.all.last``), read as files;
- places: country names and first-level subdivisions (states, provinces, regions) from
  ``pycountry`` (ISO 3166-1 / 3166-2);
- organisations: a place or a surname followed by a word such as ``University``, ``Airlines``,
  ``Industries`` or ``Foundation`` (lists written here).

The first entity of most sentences comes right after a fixed opening (``He said, "`` or the
sentence start), and its tag depends only on the next words: an ambiguous first name (``Teddy``,
``Rose``, ``Jack``…) followed by a surname is a person but followed by a noun is not an entity
at all; a place followed by ``University`` is an organisation; a name that is both a surname and
a place (``Washington``, ``Jordan``) is a person or a location depending on the predicate. A
left-to-right tagger has seen only the opening when it must tag that word.

Everything is deterministic given the seed. Training sentences draw surnames and places from
one part of the lists, validation and test sentences from all of them, so test sentences hold
names never seen in training (the character encoder's job).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import random
import re
from pathlib import Path

from apps.common.errors import DataError
from apps.tagger.conll import Sentence
from apps.tagger.tokens import parse_markup

DESCRIPTION = (
    "builtin:teddy — GENERATED sentences (templates written for this project; names from the "
    "US Census lists of the 'names' package, places from 'pycountry'), seed {seed}"
)
ENTITY_TYPES = ("LOC", "ORG", "PER")

# Openings after which the next word is capitalised whatever it is: the left context of the
# decisive word carries no information about its tag.
OPENINGS = (
    "",
    'He said, "',
    'She said, "',
    'They wrote: "',
    'The headline read: "',
    'My friend texted: "',
    "Breaking news: ",
    "Update: ",
    "Fun fact: ",
    'Overheard at lunch: "',
    'The radio host joked: "',
    "Note to self: ",
)

# Words that are first names AND the first word of a common noun phrase (written for this
# project). Followed by a surname they start a person; followed by the noun they are not names.
AMBIGUOUS = {
    "Teddy": ("bears",),
    "Rose": ("petals", "bushes", "gardens"),
    "Grace": ("notes", "periods"),
    "Bill": ("payments", "collectors"),
    "Jack": ("rabbits", "hammers"),
    "Joy": ("rides", "sticks"),
    "Faith": ("healers",),
    "Dawn": ("raids", "patrols"),
    "Amber": ("alerts", "beads"),
    "Ruby": ("slippers", "rings"),
    "Olive": ("trees", "groves"),
    "Iris": ("scanners",),
    "Summer": ("camps", "jobs", "holidays"),
    "April": ("showers",),
    "June": ("bugs", "weddings"),
    "Penny": ("stocks", "whistles"),
    "Sandy": ("beaches",),
    "Rusty": ("nails", "gates"),
    "Holly": ("bushes", "berries"),
    "Ivy": ("leaves",),
    "Heather": ("fields",),
    "Daisy": ("chains",),
    "Basil": ("leaves", "plants"),
    "Angel": ("investors",),
    "Robin": ("eggs", "nests"),
    "Ray": ("guns",),
    "Grant": ("applications", "proposals"),
    "Chase": ("scenes",),
    "Cash": ("machines", "registers"),
    "Coral": ("reefs",),
    "Pearl": ("necklaces", "divers"),
    "Crystal": ("glasses", "balls"),
    "Jasmine": ("flowers",),
    "Brook": ("trout",),
    "Skip": ("lanes",),
    "Art": ("galleries", "classes"),
}

PLACE_ORG_WORDS = (
    "University",
    "Airlines",
    "Symphony Orchestra",
    "Football Club",
    "Central Bank",
    "Institute of Technology",
    "Railways",
    "Chamber of Commerce",
    "Public Library",
    "State University",
)
NAME_ORG_WORDS = (
    "Industries",
    "Group",
    "Holdings",
    "Foundation",
    "Partners",
    "Motors",
    "Records",
    "Pharmaceuticals",
    "& Sons",
    "Brothers",
)

# Predicates by the type of their subject ({PER} {LOC} {ORG} {YEAR} are filled in).
PERSON_PREDICATES = (
    "was a great President",
    "was born in {LOC}",
    "won the election",
    "is my favourite author",
    "gave a speech in {LOC}",
    "works for {ORG}",
    "founded {ORG}",
    "met {PER} in {LOC}",
    "said the plan would work",
    "plays the piano",
    "was elected mayor",
    "wrote a new book",
    "retired in {YEAR}",
    "married {PER}",
)
PLURAL_PREDICATES = (
    "are on sale",
    "were everywhere this year",
    "cost too much these days",
    "are popular in {LOC}",
    "are hard to find",
    "made the news in {LOC}",
    "were on the list again",
    "are cheaper than ever",
)
PLACE_PREDICATES = (
    "is beautiful in spring",
    "has cold winters",
    "borders {LOC}",
    "hosted the summit in {YEAR}",
    "is where {PER} grew up",
    "is a popular destination",
    "reported heavy rain",
    "has a new border crossing",
)
ORG_PREDICATES = (
    "announced record profits",
    "hired {PER}",
    "opened an office in {LOC}",
    "was founded in {YEAR}",
    "won the championship",
    "cut hundreds of jobs",
    "signed a deal with {ORG}",
    "moved its headquarters to {LOC}",
)
# Sentences whose entities come after a cue word (both directions can tag them).
FILLERS = (
    "I met {PER} in {LOC} last {MONTH}.",
    "The flight from {LOC} to {LOC2} was delayed.",
    "{PER} joined {ORG} in {YEAR}.",
    "We stayed with {PER} near {LOC}.",
    "According to {ORG}, prices will rise.",
    "The report was written by {PER} and {PER2}.",
    "Tickets for the concert in {LOC} sold out.",
    "The meeting in {LOC} starts at 10 tomorrow.",
)
_SLOT = re.compile(r"\{(?P<slot>PER|LOC|ORG|YEAR|MONTH)2?\}")
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
]

# Sentence kinds and their weights: (kind, weight).
KINDS = (
    ("person", 0.20),  # [PER First Last] ...
    ("common", 0.18),  # Teddy bears ...
    ("place", 0.13),  # [LOC Place] ...
    ("place_org", 0.11),  # [ORG Place University] ...
    ("surname", 0.13),  # [PER Last] ... (often a name that is also a place)
    ("surname_org", 0.11),  # [ORG Last Industries] ...
    ("filler", 0.14),
)


@dataclasses.dataclass(frozen=True)
class NameLists:
    """The name lists the generator draws from."""

    first: tuple[str, ...]
    last: tuple[str, ...]
    countries: tuple[str, ...]
    places: tuple[str, ...]  # countries and first-level subdivisions
    both: tuple[str, ...]  # surnames that are also places


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"--data: builtin:teddy needs the '{name}' package (pip install {name}); "
            "or give a CoNLL / CoNLL-U file"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _census(path: Path, top: int) -> list[str]:
    names = []
    for line in path.read_text(encoding="ascii").splitlines()[:top]:
        word = line.split()[0] if line.strip() else ""
        if word.isalpha():
            names.append(word.capitalize())
    return names


def _clean_place(name: str) -> str | None:
    if any(c in name for c in ",()[]/;") or len(name.split()) > 3:
        return None
    if not all(part[:1].isupper() for part in name.split()):
        return None
    return name


@functools.lru_cache(maxsize=1)
def name_lists() -> NameLists:
    """First names, surnames and places from the ``names`` and ``pycountry`` packages.

    Raises:
        DataError: one of the packages is not installed.
    """
    names_dir = _package_dir("names")
    first = _census(names_dir / "dist.male.first", 400) + _census(
        names_dir / "dist.female.first", 600
    )
    last = _census(names_dir / "dist.all.last", 4000)
    try:
        import pycountry
    except ImportError:
        raise DataError(
            "--data: builtin:teddy needs the 'pycountry' package (pip install pycountry)"
        ) from None
    countries = set()
    for country in pycountry.countries:
        for attr in ("common_name", "name"):
            value = getattr(country, attr, None)
            if value and _clean_place(value):
                countries.add(value)
                break
    places = set(countries)
    for sub in pycountry.subdivisions:
        if sub.type in ("State", "Province", "Region", "County", "Department", "Canton") and (
            _clean_place(sub.name)
        ):
            places.add(sub.name)
    last_set = set(last)
    both = sorted(p for p in places if p in last_set)
    return NameLists(
        tuple(dict.fromkeys(first)),
        tuple(last),
        tuple(sorted(countries)),
        tuple(sorted(places)),
        tuple(both),
    )


class _Filler:
    """Draws names for one split: training uses a fixed part of each list."""

    def __init__(self, lists: NameLists, rng: random.Random, part: str, holdout: float = 0.3):
        def pick(items: tuple[str, ...]) -> list[str]:
            order = list(items)
            random.Random(f"teddy-split-{len(items)}").shuffle(order)
            cut = int(len(order) * (1 - holdout))
            return order[:cut] if part == "train" else order

        self.rng = rng
        self.first = pick(lists.first) + list(AMBIGUOUS)
        self.last = pick(lists.last)
        self.countries = pick(lists.countries)
        self.places = pick(lists.places)
        self.both = list(lists.both)

    def person(self) -> str:
        return f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}"

    def place(self) -> str:
        """A country half of the time, else any place (countries and subdivisions)."""
        return self.rng.choice(self.countries if self.rng.random() < 0.5 else self.places)

    def org(self) -> str:
        if self.rng.random() < 0.5:
            return f"{self.place()} {self.rng.choice(PLACE_ORG_WORDS)}"
        return f"{self.rng.choice(self.last)} {self.rng.choice(NAME_ORG_WORDS)}"

    def fill(self, template: str) -> str:
        """Fill ``{PER} {PER2} {LOC} {LOC2} {ORG}`` (as ``[TYPE name]``), ``{YEAR} {MONTH}``."""
        rng = self.rng
        values = {
            "PER": lambda: f"[PER {self.person()}]",
            "LOC": lambda: f"[LOC {self.place()}]",
            "ORG": lambda: f"[ORG {self.org()}]",
            "YEAR": lambda: str(rng.randint(1850, 2024)),
            "MONTH": lambda: rng.choice(MONTHS),
        }
        return _SLOT.sub(lambda m: values[m["slot"]](), template)


def _sentence(fill: _Filler, rng: random.Random) -> str:
    kinds, weights = zip(*KINDS)
    kind = rng.choices(kinds, weights)[0]
    if kind == "filler":
        return fill.fill(rng.choice(FILLERS))
    opening = rng.choice(OPENINGS)
    if kind == "person":
        first = rng.choice(list(AMBIGUOUS)) if rng.random() < 0.6 else rng.choice(fill.first)
        head, pred = f"[PER {first} {rng.choice(fill.last)}]", PERSON_PREDICATES
    elif kind == "common":
        word = rng.choice(list(AMBIGUOUS))
        head, pred = f"{word} {rng.choice(AMBIGUOUS[word])}", PLURAL_PREDICATES
    elif kind == "place":
        place = rng.choice(fill.both) if rng.random() < 0.35 else fill.place()
        head, pred = f"[LOC {place}]", PLACE_PREDICATES
    elif kind == "place_org":
        place = rng.choice(fill.both) if rng.random() < 0.35 else fill.place()
        head, pred = f"[ORG {place} {rng.choice(PLACE_ORG_WORDS)}]", ORG_PREDICATES
    elif kind == "surname":
        name = rng.choice(fill.both) if rng.random() < 0.35 else rng.choice(fill.last)
        head, pred = f"[PER {name}]", PERSON_PREDICATES
    else:  # surname_org
        name = rng.choice(fill.both) if rng.random() < 0.35 else rng.choice(fill.last)
        head, pred = f"[ORG {name} {rng.choice(NAME_ORG_WORDS)}]", ORG_PREDICATES
    body = f"{head} {fill.fill(rng.choice(pred))}"
    end = rng.choice(("!", "."))
    return f"{opening}{body}{end}" + ('"' if opening.endswith('"') else "")


def generate(count: int, seed: int, part: str = "train") -> list[Sentence]:
    """``count`` generated sentences for ``part`` (``train``, ``val`` or ``test``).

    Deterministic: the same ``(count, seed, part)`` gives the same sentences.
    """
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be train, val or test. Received: part={part!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0. Received: count={count}")
    rng = random.Random(f"teddy-{seed}-{part}")
    fill = _Filler(name_lists(), rng, part)
    out = []
    for n in range(count):
        tokens, tags = parse_markup(_sentence(fill, rng))
        out.append(Sentence(tuple(tokens), tuple(tags), doc=n, line=0))
    return out
