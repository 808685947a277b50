"""Slicing against sizes worked out by hand from the reference's rules (docs/uhd.md)."""

import pytest

from sicog.model.uhd import count_tokens, layout_tokens, plan_slices


def test_square_at_the_scale_resolution_is_one_overview_of_144_tokens():
    plan = plan_slices(336, 336)
    assert (plan.source_size, plan.grid, plan.slice_sizes) == ((336, 336), None, [])
    assert count_tokens(plan, 12) == len(layout_tokens(plan, 12)) == 144


def test_640x480_is_a_2x2_grid_of_745_tokens():
    # ratio 307200/112896 = 2.72 -> 3 slices -> candidates 2, 3, 4; 2x2 is nearest log(4/3).
    # A 320x240 cell at the 336^2 area: h = int(336/sqrt(4/3)) = 290, w = int(290*4/3) = 386,
    # floored to 14 px: 378x280; the overview is the same area fit of the whole image.
    plan = plan_slices(640, 480)
    assert plan.grid == (2, 2)
    assert plan.slice_sizes == [(378, 280)] * 4
    assert plan.source_size == (378, 280)
    assert count_tokens(plan, 12) == 24 * 25 + 1 + 144 == 745


def test_the_seven_slice_maximum_is_1237_tokens():
    plan = plan_slices(336, 7 * 336)  # a 1:7 strip: seven cells of 336^2, one per grid row
    assert plan.grid == (1, 7) and plan.num_slices == 7
    assert plan.slice_sizes == [(336, 336)] * 7
    assert count_tokens(plan, 12) == 84 * 13 + 1 + 144 == 1237


def test_slice_count_is_capped_and_the_grid_follows_the_aspect():
    plan = plan_slices(4000, 3000)  # ratio 106 -> capped at 7 -> candidates 6 and 7
    assert plan.grid == (3, 2)  # log(3/2) is nearest log(4/3) among 1x6, 2x3, 3x2, 6x1, 1x7, 7x1
    # cell 1333x1500 (4000 floored to 3999): h = int(336/sqrt(0.8887)) = 356, w = int(356*0.8887) = 316
    assert plan.slice_sizes == [(308, 350)] * 6
    assert plan.source_size == (378, 280)


def test_small_images_are_upscaled_to_the_scale_area():
    plan = plan_slices(100, 50)  # h = int(336/sqrt(2)) = 237, w = 474 -> floored 462x224
    assert (plan.source_size, plan.grid) == ((462, 224), None)


def test_a_size_below_one_patch_rounds_up_to_one_patch():
    assert plan_slices(1, 4000).source_size[0] == 14
    assert plan_slices(4000, 1).source_size[1] == 14


def test_other_maximum_resolution_and_patch():
    plan = plan_slices(1000, 1000, max_slices=9, scale_resolution=448, patch_size=16)
    # ratio 4.98 -> 5 -> candidates 4, 5, 6: 2x2 matches the square exactly; a 500^2 cell -> 448^2
    assert plan.grid == (2, 2) and plan.slice_sizes == [(448, 448)] * 4
    assert plan.source_size == (448, 448)


def test_never_split_keeps_the_overview_of_the_sliced_plan():
    assert plan_slices(640, 480, never_split=True).source_size == plan_slices(640, 480).source_size
    assert plan_slices(640, 480, never_split=True).grid is None


def test_one_slice_per_row_puts_the_row_separator_before_the_overview():
    kinds = layout_tokens(plan_slices(336, 7 * 336), 2)
    assert kinds[:3] == ["image", "image", "row"] and kinds[-5] == "row"
    kinds = layout_tokens(plan_slices(640, 480), 2)
    assert kinds[-5] == "slice" and kinds.count("slice") == 1 and kinds.count("row") == 4


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_empty_sizes_are_refused(size):
    with pytest.raises(ValueError, match="must be positive"):
        plan_slices(*size)
