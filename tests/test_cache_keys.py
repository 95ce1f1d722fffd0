"""Cache keys carry the version of the code that computed them (``book.CODE_VERSIONS``): a change
that moves a kind's numbers raises its version, and every cached or shipped file of that kind
stops counting."""

import os

from nadbook import book


def shipped_card_config():
    os.environ.pop("NADKIT_PROFILE", None)
    try:
        return book.Settings.of(archs="vgg16").run_config("vgg16", 0)
    finally:
        os.environ["NADKIT_PROFILE"] = "smoke"


def test_the_shipped_card_run_is_keyed_by_the_current_code():
    assert book.run_dir(shipped_card_config()).is_relative_to(book.SHIPPED), \
        "a run's code version was raised: `make reproduce` and ship its results"


def test_raising_a_kinds_version_moves_its_keys_and_no_others(monkeypatch):
    config = shipped_card_config()
    before = {kind: book._key({"seed": 0}, kind) for kind in book.CODE_VERSIONS}
    monkeypatch.setitem(book.CODE_VERSIONS, "evaluation", 2)
    after = {kind: book._key({"seed": 0}, kind) for kind in book.CODE_VERSIONS}
    assert [k for k in before if before[k] != after[k]] == ["evaluation"]
    assert book.run_dir(config).is_relative_to(book.SHIPPED)  # the run itself still counts
    monkeypatch.setitem(book.CODE_VERSIONS, "run", 2)
    assert not book.run_dir(config).is_relative_to(book.SHIPPED)  # a new run's code: recomputed
