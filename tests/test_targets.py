"""Targets as data: the shipped TOML files, user targets, bad files, the synapse memory model."""
from __future__ import annotations

import re

import numpy as np
import pytest

from toolchain.errors import ToolchainError
from toolchain.targets import SCHEMA, TARGET_DIR, TargetError, TargetSpec, list_targets, load_target


def test_shipped_targets_load_with_published_figures():
    assert {"loihi1", "loihi2"} <= set(list_targets())
    l1, l2 = load_target("loihi1"), load_target("loihi2")
    assert isinstance(l1, TargetSpec) and l1.name == "loihi1" and l2.name == "loihi2"
    # Davies et al. 2018 / nengo-loihi figures
    assert (l1.cores_per_chip, l1.neurons_per_core, l1.synapse_memory_bits) == (128, 1024, 1048576)
    assert (l1.input_axons_per_core, l1.output_axons_per_core) == (4096, 4096)
    assert l1.reset_modes == ("zero",) and l2.reset_modes == ("zero", "subtract")
    assert l1.graded_spike_bits == 0 and l2.graded_spike_bits > 0
    for t in (l1, l2):  # Lava fixed_pt widths
        assert (t.u_bits, t.v_bits, t.vth_bits, t.decay_bits) == (24, 24, 17, 12)
        assert (t.vth_max, t.decay_max, t.decay_unity) == (131071, 4095, 4096)
        assert (t.bias_mant_min, t.bias_mant_max, t.bias_exp_max) == (-4096, 4095, 7)
        assert t.weight_exp_min < 0 < t.weight_exp_max
        assert t.total_cores == t.chips * t.cores_per_chip
    # Loihi 2: no longer the architectural 8192 per core ([TB21]'s 1M per chip) but what Intel's compiler allocates
    # for CUBA LIF layers, calibrated on its PilotNet table ([LDL]: halving stops in [3168, 4095]); SynMem 12000
    # 64-bit words; dense 16 bits per synapse; shared-weight convolutions (tests/test_partition_intel.py)
    assert 3168 <= l2.neurons_per_core <= 4095 and l2.cores_per_chip == 128
    assert l2.synapse_memory_bits == 12000 * l2.word_bits and not l2.shared_memory
    assert l2.shared_conv and not l1.shared_conv and l2.dense_synapse_bits == 16 and l1.dense_synapse_bits == 0
    assert l1.synop_pj == pytest.approx(23.6) and l2.synop_pj is None  # Loihi 2: not published per op


@pytest.mark.parametrize("name", ["loihi1", "loihi2"])
def test_every_figure_names_its_source(name):
    """Each `key = value` line carries a comment with a source tag or the word 'estimate'/'derived'."""
    text = (TARGET_DIR / f"{name}.toml").read_text()
    keys = [k for sec in SCHEMA.values() for k in sec]
    for line in text.splitlines():
        m = re.match(r"^(\w+)\s*=", line)
        if not m or m.group(1) in ("name", "description"):
            continue
        assert m.group(1) in keys
        comment = line.split("#", 1)[1] if "#" in line else ""
        assert re.search(r"\[[A-Z0-9]+\]|estimate|derived|not published|not modelled", comment), line


def test_a_user_target_is_a_file(tmp_path):
    src = (TARGET_DIR / "loihi2.toml").read_text()
    text = src.replace('name = "loihi2"', 'name = "tiny"').replace("neurons_per_core = 4095", "neurons_per_core = 16")
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    t = load_target(path)
    assert t.name == "tiny" and t.neurons_per_core == 16 and t.source == str(path)
    assert load_target(str(path)) == t
    assert load_target(t) is t
    # the compiler takes the file: 40 neurons need 3 cores of 16
    import warnings
    from toolchain.compile import compile_graph
    from toolchain.testing import random_lif_graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = compile_graph(random_lif_graph([8, 40], seed=0), path)
    assert prog.target == "tiny" and prog.report["cores_used"] == prog.report["lower_bound"] == 3
    assert max(c.neurons for c in prog.placement.cores) == 16


def _bad(tmp_path, old, new):
    text = (TARGET_DIR / "loihi1.toml").read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new))
    with pytest.raises(TargetError) as ei:
        load_target(path)
    return ei.value, str(path)


@pytest.mark.parametrize("old,new,field,words", [
    ("neurons_per_core = 1024", "", "core.neurons_per_core", "missing"),
    ("neurons_per_core = 1024", "neurons_per_core = -3", "core.neurons_per_core", "> 0"),
    ("neurons_per_core = 1024", "neurons_per_core = 10.5", "core.neurons_per_core", "integer"),
    ("neurons_per_core = 1024", "neurons_per_core = 1024\nneurons_per_chip = 5", "core.neurons_per_chip", "unknown"),
    ('reset_modes = ["zero"]', 'reset_modes = ["hard"]', "neuron.reset_modes", "unknown reset"),
    ("weight_exp_min = -8", "weight_exp_min = 9", "synapse.weight_exp_min", "weight_exp_max"),
    ("[energy]", "[power]", "power", "unknown section"),
])
def test_bad_target_files_name_file_and_key(tmp_path, old, new, field, words):
    err, path = _bad(tmp_path, old, new)
    assert err.file == path and err.field == field
    assert path in str(err) and field in str(err) and words in str(err)


def test_bad_toml_and_unknown_names(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[chip\ncores = 1")
    with pytest.raises(TargetError, match="not valid TOML") as ei:
        load_target(path)
    assert ei.value.file == str(path)
    with pytest.raises(TargetError, match="loihi1.*loihi2"):
        load_target("loihi99")
    with pytest.raises(ToolchainError, match="no such target file"):
        load_target(tmp_path / "missing.toml")


def test_synapse_memory_model():
    """nengo-loihi's encoding: groups of <= 64 synapses, 10 header bits, rounded up to 64-bit words."""
    t = load_target("loihi1")
    dense = t.synapse_bits(np.array([0, 1, 54, 64, 65, 128]), sparse=False)
    # 1*8+10=18 -> 64; 54*8+10=442 -> 448; 64*8+10=522 -> 576; 65 = 576 + 64; 128 = 2*576
    assert dense.tolist() == [0, 64, 448, 576, 640, 1152]
    sparse = t.synapse_bits(np.array([1, 3, 64]), sparse=True)  # 8 weight + 10 index bits per synapse
    assert sparse.tolist() == [64, 64, 1216]  # 3*18+10 = 64; 64*18+10 = 1162 -> 1216
    with_delay = t.synapse_bits(np.array([64]), sparse=False, delay=True)  # + 6 delay bits
    assert with_delay.tolist() == [64 * 14 + 10 + (64 - (64 * 14 + 10) % 64)]


def test_loihi2_dense_format_matches_intels_dense_rows():
    """[LDL] dense rows: ceil(n / 4) SynMem words per input axon for n neurons on the core (16 bits per synapse,
    no header): 10 -> 1 costs 10 words, 50 -> 10 150, 100 -> 50 1300 (Intel's "Synapses / core" column)."""
    t = load_target("loihi2")
    words = t.synapse_bits(np.array([1, 10, 50, 100]), sparse=False) // t.word_bits
    assert words.tolist() == [1, 3, 13, 25]
    assert [10 * words[0], 50 * words[1], 100 * words[2]] == [10, 150, 1300]
    # the sparse format is unchanged: weight + index bits (no dense_synapse_bits)
    assert t.synapse_bits(np.array([3]), sparse=True).tolist() == [64]  # 3 * (8 + 13) = 63 -> one word


def test_conv_tap_bits_is_a_header_word_plus_the_channels_weights():
    t = load_target("loihi2")
    # one 64-bit header word + ceil(C * b / 64) words: 24 channels at 5 bits -> 1 + 2; 64 at 4 bits -> 1 + 4
    assert (t.conv_tap_bits(np.array([0, 1, 24, 36, 64]), 5) // 64).tolist() == [0, 2, 3, 4, 6]
    assert (t.conv_tap_bits(np.array([24, 36, 48, 64]), 4) // 64).tolist() == [3, 4, 4, 5]
    assert (t.conv_tap_bits(np.array([64]), 12) // 64).tolist() == [9]  # capped at weight_bits = 8


def test_conv_encoding_must_be_known(tmp_path):
    text = (TARGET_DIR / "loihi2.toml").read_text().replace('conv_encoding = "shared"', 'conv_encoding = "winograd"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match="shared") as ei:
        load_target(path)
    assert ei.value.field == "synapse.conv_encoding"
