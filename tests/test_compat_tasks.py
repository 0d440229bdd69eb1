"""Task geometry as chiltepin 0.1.x documents it: the geometry wins; not a dict: TypeError."""

from __future__ import annotations

import pytest
from helpers import tasks as ts

from chiltepin.tasks import merge_geometry


def test_geometry_wins_over_explicit_resource_specification():
    explicit = {"num_nodes": 4, "num_ranks": 16, "launcher_options": "--exclusive"}
    geometry = {"num_nodes": 2, "num_ranks": 8, "ranks_per_node": 4}
    assert merge_geometry(geometry, explicit) == {
        "num_nodes": 2,
        "num_ranks": 8,
        "ranks_per_node": 4,
        "launcher_options": "--exclusive",
    }
    assert explicit == {"num_nodes": 4, "num_ranks": 16, "launcher_options": "--exclusive"}
    assert merge_geometry({}, None) == {}


@pytest.mark.parametrize("geometry", [[("num_nodes", 2)], "num_nodes=2", 4])
def test_geometry_that_is_not_a_dict_is_a_type_error_at_the_call(geometry):
    # Raised by the call itself, before any workflow is needed.
    with pytest.raises(TypeError, match="chiltepin_task_geometry must be a dict"):
        ts.add(1, 2, chiltepin_task_geometry=geometry)
