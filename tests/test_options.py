"""The ``mis:`` block of each collection (mis.api.options): typed, and a typo is an error
naming the collection and the key, raised when the configuration is built."""

from __future__ import annotations

import copy

import pytest

from mis.api.config import build_config, load_template
from mis.api.options import CollectionOptions, options_of, validate_collections


def test_the_shipped_template_is_valid():
    template = load_template()
    validate_collections(template)
    grains = options_of("grains", template["resources"]["grains"]["providers"][0]["mis"])
    assert grains.feature_links is False and grains.partitioned_by == "run_id" and grains.parent is not None
    assert grains.parent.collection == "plugs" and grains.parent.field == "plug_id"
    assert options_of("deposits", None) == CollectionOptions()


def test_a_misspelt_key_names_the_collection_and_the_key():
    template = copy.deepcopy(load_template())
    template["resources"]["grains"]["providers"][0]["mis"]["feature_link"] = False
    # refused before the database is touched (there is none at this URL)
    with pytest.raises(ValueError, match=r"collection 'grains': unknown key mis\.feature_link"):
        build_config("postgresql+psycopg://nobody@127.0.0.1:1/none", template=template)


@pytest.mark.parametrize(("block", "message"), [
    ({"parent": {"collection": "plugs", "feild": "plug_id"}}, r"unknown key mis\.parent\.feild"),
    ({"kind": "plugs"}, r"mis\.kind: Input should be"),
    ({"feature_links": "sometimes"}, r"mis\.feature_links"),
])
def test_wrong_values_are_refused(block, message):
    with pytest.raises(ValueError, match=r"collection 'x': " + message):
        options_of("x", block)
