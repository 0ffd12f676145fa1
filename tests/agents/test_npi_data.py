"""NPI training data: per-frame call sequences from traces, end bits, packing, input checks."""

import dataclasses

import jax
import numpy as np
import pytest

from npigym import traces
from npigym.agents.npi import data as npi_data
from npigym.agents.npi.model import task_layout
from tests.agents.npi_helpers import addition_traces, fig3b_traces, sorting_traces


@pytest.fixture(scope="module")
def fig3b():
    return fig3b_traces()


@pytest.fixture(scope="module")
def sorting():
    return sorting_traces()


def frames_of(td, table, name):
    """The token index lists of the frames of program ``name``."""
    lengths = td.frame_lengths
    starts = np.cumsum(lengths) - lengths
    row = table.names.index(name)
    return [np.arange(s, s + n) for s, n in zip(starts, lengths) if td.program[s] == row]


def calls(td, table, idx):
    return [table.names[p] for p in td.next_program[idx]]


def test_frame_index__frames_of_96_plus_125(fig3b):
    _, _, data = fig3b
    frame = npi_data.frame_index(data.depth, data.lengths)
    # ADD is frame 0 throughout; ADD1, CARRY, LSHIFT frames are numbered as they start.
    np.testing.assert_array_equal(frame[:15], [0, 1, 1, 2, 2, 2, 2, 1, 0, 3, 3, 3, 3, 3, 0])
    assert frame.max() + 1 == 1 + 3 + 2 + 3  # ADD, 3 ADD1, 2 CARRY, 3 LSHIFT


def test_frame_index__episode_boundaries():
    depth = np.asarray([0, 1, 1, 0, 0, 0, 1, 0])
    lengths = np.asarray([4, 4])  # two episodes of four rows
    np.testing.assert_array_equal(npi_data.frame_index(depth, lengths),
                                  [0, 1, 1, 0, 2, 2, 3, 2])


def test_task_frames__per_frame_sequences_and_end_bits(fig3b):
    env, table, data = fig3b
    td = npi_data.task_frames(data, table, "addition", "auto", end_modes={"ADD": "return"})
    assert td.end_modes == {"ADD": "return", "ADD1": "call", "CARRY": "call", "LSHIFT": "call"}
    (add,) = frames_of(td, table, "ADD")
    # ADD's loop exit is an observed RETURN: its last LSHIFT carries no end bit.
    assert calls(td, table, add) == ["ADD1", "LSHIFT"] * 3 + ["RETURN"]
    np.testing.assert_array_equal(td.end[add], [0] * 6 + [1])
    for carry in frames_of(td, table, "CARRY"):
        # CARRY's RETURN row is dropped; its end bit rides on its last call (NPI's r).
        assert calls(td, table, carry) == ["MOVE_PTR", "WRITE", "MOVE_PTR"]
        np.testing.assert_array_equal(td.end[carry], [0, 0, 1])
        np.testing.assert_array_equal(td.next_args[carry][:, :2], [[2, 0], [2, 1], [2, 1]])
    add1 = frames_of(td, table, "ADD1")
    assert [calls(td, table, f) for f in add1] == [["WRITE", "CARRY"]] * 2 + [["WRITE"]]
    assert all(td.end[f][-1] and not td.end[f][:-1].any() for f in add1)
    # Inputs are the frame's: program and args constant, local view as observed.
    assert (td.program[add] == table.names.index("ADD")).all()
    np.testing.assert_array_equal(td.local[""][add[0]], data.observation["local"][0])


def test_task_frames__call_and_return_modes(fig3b):
    _, table, data = fig3b
    call = npi_data.task_frames(data, table, "addition", "call")
    (add,) = frames_of(call, table, "ADD")
    assert calls(call, table, add) == ["ADD1", "LSHIFT"] * 3  # NPI: end bit on the last call
    np.testing.assert_array_equal(call.end[add], [0] * 5 + [1])
    assert call.end_used.all()
    ret = npi_data.task_frames(data, table, "addition", "return")
    for f in frames_of(ret, table, "CARRY"):
        assert calls(ret, table, f)[-1] == "RETURN"
        np.testing.assert_array_equal(ret.end[f], [0, 0, 0, 1])
    assert not ret.end_used.any()  # frames that RETURN explicitly do not train the end bit


def test_task_frames__empty_frames_keep_their_return(sorting):
    _, table, data = sorting
    td = npi_data.task_frames(data, table, "sorting", "auto")
    compswaps = frames_of(td, table, "COMPSWAP")
    kinds = {tuple(calls(td, table, f)) for f in compswaps}
    assert kinds == {("SWAP",), ("RETURN",)}  # swapped, or in order: nothing to call
    assert all(td.end[f].all() for f in compswaps)


def test_detect_end_modes__loops_with_unobservable_exits(fig3b, sorting):
    _, _, data = sorting
    modes = npi_data.detect_end_modes(data)
    # BUBBLESORT's last PTR 3 RIGHT and RESET's last LSHIFT look like the others; BUBBLE's
    # last BSTEP does not (pointer 2 is at the end), nor do the fixed-length programs'.
    assert {k for k, v in modes.items() if v == "return"} == {"BUBBLESORT", "RESET"}
    modes = npi_data.detect_end_modes(addition_traces()[2])
    assert {k for k, v in modes.items() if v == "return"} == {"ADD"}
    # One example shows no two look-alike calls: the end bit stays on ADD's last call.
    assert npi_data.detect_end_modes(fig3b[2])["ADD"] == "call"


def test_task_frames_many__one_translation_for_all_files(fig3b):
    # One example shows no look-alike calls (ADD: "call"), 16 do (ADD: "return"); together,
    # ADD returns explicitly in both files' frames.
    _, table, one = fig3b
    many = addition_traces()[2]
    td = npi_data.task_frames_many([one, many], table, "addition")
    assert td.end_modes["ADD"] == "return"
    add = frames_of(td, table, "ADD")
    assert len(add) == 17 and all(calls(td, table, f)[-1] == "RETURN" for f in add)
    assert not td.end_used[np.concatenate(add)].any()


def test_pack__rows_hold_whole_frames_of_one_program(sorting):
    _, table, data = sorting
    td = npi_data.task_frames(data, table, "sorting", "auto")
    length = npi_data.block_length([td])
    assert length % 8 == 0 and length >= td.frame_lengths.max()
    packed = npi_data.pack(td, table, length)
    valid = packed.targets.valid
    assert valid.sum() == td.num_tokens
    # every real token is in a row of its own program; frames start with `first`
    assert (packed.tokens.program[valid] == np.repeat(packed.row_program, valid.sum(1))).all()
    assert packed.tokens.first[valid].sum() == td.frame_lengths.shape[0]
    assert packed.tokens.first[~valid].all()  # slack never carries a state
    # the tokens, read back row by row, are the frames' tokens of each program in order
    for row_program in np.unique(packed.row_program):
        rows = packed.row_program == row_program
        got = packed.targets.program[rows][valid[rows]]
        want = td.next_program[td.program == row_program]
        np.testing.assert_array_equal(got, want)
    # argument slots are trained only where the next program takes them
    move = table.names.index("MOVE_PTR")
    is_move = valid & (packed.targets.program == move)
    assert packed.targets.arg_mask[is_move][:, :2].all()
    assert not packed.targets.arg_mask[valid & ~is_move].any()  # SWAP and programs: none


def test_check_traces__clear_errors(fig3b, sorting):
    env, table, data = fig3b
    layout = task_layout(env)
    empty = dataclasses.replace(data, lengths=data.lengths[:0], success=data.success[:0],
                                **{k: getattr(data, k)[:0] for k in traces.ROW_FIELDS},
                                observation=jax.tree.map(lambda x: x[:0], data.observation))
    with pytest.raises(npi_data.TraceInputError, match="no episodes"):
        npi_data.check_traces(empty, layout, "empty.npz")
    _, _, sort_data = sorting
    with pytest.raises(npi_data.TraceInputError, match=r"recorded on Sorting-v0.*another env"):
        npi_data.check_traces(sort_data, layout, "sort.npz")
    failed = dataclasses.replace(data, success=~data.success)
    with pytest.raises(npi_data.TraceInputError, match="did not end with the task solved"):
        npi_data.check_traces(failed, layout, "failed.npz")
    local = data.observation["local"]
    wide = dataclasses.replace(data, observation={**data.observation, "local": local + 12})
    with pytest.raises(npi_data.TraceInputError, match="one-hot range"):
        npi_data.check_traces(wide, layout, "wide.npz")
    narrow = dataclasses.replace(data, observation={**data.observation, "local": local[:, :3]})
    with pytest.raises(npi_data.TraceInputError, match="shape"):
        npi_data.check_traces(narrow, layout, "narrow.npz")
