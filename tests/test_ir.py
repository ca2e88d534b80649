"""Unit tests of the IR: weight storage, nodes, graph construction (cycles, delays, order), verify."""
import numpy as np
import pytest

from toolchain import ir
from toolchain.errors import GraphError
from toolchain.ir import (IF, LIF, Affine, AvgPool2d, Conv1d, Conv2d, Csr, CubaLIF, Dense, Flatten, Graph, Input,
                          Linear, Output, Structured, SumPool2d, Threshold, verify)


# ----------------------------------------------------------------------------------------------- storage
def test_dense_basics():
    w = np.arange(6.0).reshape(2, 3)
    d = Dense(w)
    assert d.shape == (2, 3) and d.nnz == 6 and d.kind == "dense"
    assert np.array_equal(d.to_dense(), w)
    assert d.stored_mask().all()
    w[0, 0] = 99  # the storage copied its input
    assert d.to_dense()[0, 0] == 0
    with pytest.raises(ValueError):
        d.values[0, 0] = 1  # read-only
    assert d.density == 1.0


def test_dense_bad_shape_names_field():
    with pytest.raises(GraphError) as e:
        Dense(np.zeros(3))
    assert e.value.field == "weight"


def test_csr_from_dense_nnz_and_mask():
    w = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    c = Csr.from_dense(w)
    assert c.nnz == 3
    assert np.array_equal(c.to_dense(), w)
    assert np.array_equal(c.stored_mask(), w != 0)
    assert list(c.row_fan_in()) == [1, 2]
    assert list(c.col_fan_out()) == [1, 1, 1]
    # explicit mask keeps a stored zero
    m = np.array([[True, True, False], [False, False, True]])
    c2 = Csr.from_dense(w, mask=m)
    assert c2.nnz == 3 and np.array_equal(c2.stored_mask(), m)
    assert c2.to_dense()[0, 0] == 0.0
    assert np.array_equal(c.to_scipy().toarray(), w)


def test_csr_from_coo_sums_duplicates():
    c = Csr.from_coo((2, 3), rows=[0, 1, 0, 1], cols=[2, 0, 2, 0], data=[1.5, 2.0, 0.5, -1.0])
    assert c.nnz == 2
    assert np.array_equal(c.to_dense(), [[0, 0, 2.0], [1.0, 0, 0]])
    ci = Csr.from_coo((1, 2), rows=[0, 0], cols=[1, 1], data=np.array([3, 4], dtype=np.int16))
    assert ci.dtype == np.int16 and ci.to_dense()[0, 1] == 7


def test_csr_from_coo_out_of_range_names_field():
    with pytest.raises(GraphError) as e:
        Csr.from_coo((2, 3), rows=[0, 2], cols=[0, 0], data=[1.0, 1.0])
    assert e.value.field == "weight.indices"
    with pytest.raises(GraphError) as e:
        Csr.from_coo((2, 3), rows=[0], cols=[3], data=[1.0])
    assert e.value.field == "weight.indices"
    with pytest.raises(GraphError):  # used to land silently in row 0, column 2
        Csr.from_coo((2, 3), rows=[1], cols=[-1], data=[1.0])
    with pytest.raises(GraphError):
        Csr.from_coo((2, 3), rows=[0, 1], cols=[0], data=[1.0])


@pytest.mark.parametrize("kwargs, fld", [
    (dict(shape=(2, 3), indptr=[0, 1], indices=[0], data=[1.0]), "weight.indptr"),
    (dict(shape=(2, 3), indptr=[0, 2, 1], indices=[0], data=[1.0]), "weight.indptr"),
    (dict(shape=(2, 3), indptr=[0, 1, 2], indices=[0], data=[1.0]), "weight.indices"),
    (dict(shape=(2, 3), indptr=[0, 1, 1], indices=[5], data=[1.0]), "weight.indices"),
    (dict(shape=(2, 3, 4), indptr=[0, 1, 1], indices=[0], data=[1.0]), "weight"),
])
def test_csr_bad_arrays_name_field(kwargs, fld):
    with pytest.raises(GraphError) as e:
        Csr(**kwargs)
    assert e.value.field == fld


def test_structured_masks():
    v = np.arange(1.0, 17.0).reshape(4, 4)
    s = Structured(v, row_mask=[True, True, False, True], col_mask=[True, False, True, True], block_shape=(2, 2),
                   block_mask=[[True, True], [False, True]])
    mask = s.stored_mask()
    expect = np.ones((4, 4), bool)
    expect[2, :] = False
    expect[:, 1] = False
    expect[2:, :2] = False
    assert np.array_equal(mask, expect)
    assert s.nnz == int(expect.sum())
    assert np.array_equal(s.to_dense(), np.where(expect, v, 0))
    assert list(s.kept_rows) == [0, 1, 3]
    assert list(s.kept_cols) == [0, 2, 3]
    c = s.to_csr()
    assert c.nnz == s.nnz and np.array_equal(c.to_dense(), s.to_dense())


@pytest.mark.parametrize("kwargs, fld", [
    (dict(row_mask=[True]), "weight.row_mask"),
    (dict(col_mask=[True] * 5), "weight.col_mask"),
    (dict(block_shape=(0, 1)), "weight.block_shape"),
    (dict(block_shape=(3, 3), block_mask=np.ones((1, 1), bool)), "weight.block_mask"),
])
def test_structured_bad_masks_name_field(kwargs, fld):
    with pytest.raises(GraphError) as e:
        Structured(np.ones((4, 4)), **kwargs)
    assert e.value.field == fld


@pytest.mark.parametrize("storage", [
    Dense(np.array([[1.0, 0.0], [2.0, 3.0]])),
    Csr.from_dense(np.array([[1.0, 0.0], [2.0, 3.0]])),
    Structured(np.array([[1.0, 5.0], [2.0, 3.0]]), col_mask=[True, False]),
])
def test_map_values_keeps_structure(storage):
    m = storage.map_values(lambda a: a * 2)
    assert type(m) is type(storage)
    assert np.array_equal(m.stored_mask(), storage.stored_mask())
    assert np.array_equal(m.to_dense(), storage.to_dense() * 2)
    assert m == storage.map_values(lambda a: a * 2)
    assert m != storage


def test_storage_equality_is_type_and_structure_sensitive():
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert Dense(w) == Dense(w.copy())
    assert Dense(w) != Csr.from_dense(w)  # same values, different structure
    assert Csr.from_dense(w) != Csr.from_dense(w, mask=np.ones((2, 2), bool))


# ------------------------------------------------------------------------------------------------- nodes
def test_scalar_params_broadcast():
    n = LIF("l", tau=0.01, v_threshold=1.0, shape=(2, 3))
    assert n.tau.shape == (2, 3) and np.all(n.tau == 0.01)
    assert n.r.shape == (2, 3) and np.all(n.r == 1.0)
    assert n.v_reset.shape == (2, 3) and np.all(n.v_reset == 0.0)
    assert n.tau.dtype == np.float64 and not n.tau.flags.writeable
    assert n.size == 6 and n.is_neuron and n.is_spiking


def test_param_shape_mismatch_names_node_and_field():
    with pytest.raises(GraphError) as e:
        LIF("hidden", tau=np.ones(4) * 0.01, v_threshold=1.0, shape=(3,))
    assert e.value.node == "hidden" and e.value.field == "tau"
    assert "hidden" in str(e.value) and "tau" in str(e.value)


@pytest.mark.parametrize("field_name", ["tau", "v_threshold", "r"])
def test_nan_rejected(field_name):
    kw = dict(tau=0.01, v_threshold=1.0, shape=(2,))
    kw[field_name] = [np.nan, 1.0]
    with pytest.raises(GraphError) as e:
        LIF("n", **kw)
    assert e.value.field == field_name and e.value.node == "n"


def test_nan_rejected_in_weights():
    with pytest.raises(GraphError) as e:
        Linear("fc", weight=Dense(np.array([[np.nan]])))
    assert (e.value.node, e.value.field) == ("fc", "weight")
    with pytest.raises(GraphError) as e:
        Conv2d("c", weight=np.full((1, 1, 1, 1), np.inf), input_shape=(1, 3, 3))
    assert (e.value.node, e.value.field) == ("c", "weight")
    with pytest.raises(GraphError) as e:
        Conv1d("c1", weight=np.full((1, 1, 1), np.nan), input_shape=(1, 3))
    assert (e.value.node, e.value.field) == ("c1", "weight")


def test_tau_must_be_positive_and_reset_mode_checked():
    with pytest.raises(GraphError) as e:
        LIF("n", tau=[0.01, 0.0], v_threshold=1.0, shape=(2,))
    assert e.value.field == "tau"
    with pytest.raises(GraphError) as e:
        IF("n", v_threshold=1.0, reset_mode="hard", shape=(2,))
    assert e.value.field == "reset_mode"


def test_bad_shape_names_field():
    with pytest.raises(GraphError) as e:
        Input("x", shape=(3, 0))
    assert (e.value.node, e.value.field) == ("x", "shape")


def test_conv_and_pool_out_shapes():
    c = Conv2d("c", weight=np.ones((4, 2, 3, 5)), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
               input_shape=(2, 9, 10))
    # H: (9 + 2 - 2 - 1)//2 + 1 = 5 ; W: (10 + 4 - 8 - 1)//1 + 1 = 6
    assert c.out_shape == (4, 5, 6) and c.in_shape == (2, 9, 10)
    assert np.all(c.bias == 0) and c.bias.shape == (4,)
    g = Conv2d("g", weight=np.ones((6, 1, 3, 3)), groups=3, padding=1, input_shape=(3, 4, 4))
    assert g.out_shape == (6, 4, 4)
    c1 = Conv1d("c1", weight=np.ones((3, 2, 4)), stride=2, padding=1, input_shape=(2, 11))
    assert c1.out_shape == (3, 5)  # (11 + 2 - 3 - 1)//2 + 1
    p = SumPool2d("p", kernel_size=2, stride=2, input_shape=(3, 7, 8))
    assert p.out_shape == (3, 3, 4)
    a = AvgPool2d("a", kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), input_shape=(2, 5, 5))
    assert a.out_shape == (2, 5, 5) and a.kind == "AvgPool2d"
    f = Flatten("f", input_shape=(2, 3, 4), start_dim=1)
    assert f.out_shape == (2, 12)
    assert Flatten("f2", input_shape=(2, 3, 4)).out_shape == (24,)


def test_conv_bad_groups_and_empty_output():
    with pytest.raises(GraphError) as e:
        Conv2d("c", weight=np.ones((4, 2, 3, 3)), input_shape=(3, 5, 5))
    assert (e.value.node, e.value.field) == ("c", "groups")
    with pytest.raises(GraphError) as e:
        Conv2d("c", weight=np.ones((4, 2, 7, 7)), input_shape=(2, 5, 5))
    assert e.value.node == "c"
    with pytest.raises(GraphError) as e:
        Flatten("f", input_shape=(2, 3), start_dim=2)
    assert e.value.field == "start_dim"


def test_node_equality_and_replace():
    a = LIF("n", tau=0.01, v_threshold=1.0, shape=(2,))
    assert a == LIF("n", tau=[0.01, 0.01], v_threshold=1.0, shape=(2,))
    b = a.replace(reset_mode="subtract")
    assert b != a and b.reset_mode == "subtract"
    with pytest.raises(GraphError):
        a.replace(tau=-1.0)


# ------------------------------------------------------------------------------------------------- graph
def _rec_graph(edges=None, delayed=None):
    nodes = [Input("in", shape=(3,)), Linear("fc", weight=Dense(np.ones((4, 3)))),
             LIF("lif", tau=0.01, v_threshold=1.0, shape=(4,)), Linear("rec", weight=Dense(np.eye(4))),
             Output("out", shape=(4,))]
    edges = edges or [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    return Graph(nodes, edges, dt=1e-3)


def test_cycle_detection_marks_recurrent_edge():
    g = _rec_graph()
    assert [(e.src, e.dst) for e in g.recurrent_edges] == [("rec", "lif")]
    assert all(e.delay == 0 for e in g.edges if (e.src, e.dst) != ("rec", "lif"))
    assert g.predecessors("lif", delayed=True) == ["rec"]
    assert g.predecessors("lif", delayed=False) == ["fc"]
    assert sorted(g.successors("lif")) == ["out", "rec"]


def test_cycle_marking_independent_of_node_and_edge_order():
    nodes = [Output("out", shape=(4,)), Linear("rec", weight=Dense(np.eye(4))),
             LIF("lif", tau=0.01, v_threshold=1.0, shape=(4,)), Linear("fc", weight=Dense(np.ones((4, 3)))),
             Input("in", shape=(3,))]
    edges = [("rec", "lif"), ("lif", "out"), ("lif", "rec"), ("fc", "lif"), ("in", "fc")]
    g = Graph(nodes, edges)
    assert [(e.src, e.dst) for e in g.recurrent_edges] == [("rec", "lif")]


def test_zero_delay_cycle_rejected():
    with pytest.raises(GraphError) as e:
        _rec_graph(edges=[("in", "fc"), ("fc", "lif", 0), ("lif", "rec", 0), ("rec", "lif", 0), ("lif", "out", 0)])
    assert "cycle" in str(e.value)


def test_topological_order():
    g = _rec_graph()
    order = g.topological_order()
    assert order.index("in") < order.index("fc") < order.index("lif") < order.index("rec")
    assert order.index("lif") < order.index("out")
    assert [n.name for n in g] == list(order)


def test_duplicate_node_and_missing_edge_target():
    with pytest.raises(GraphError) as e:
        Graph([Input("a", shape=(1,)), Output("a", shape=(1,))], [])
    assert (e.value.node, e.value.field) == ("a", "name")
    with pytest.raises(GraphError) as e:
        Graph([Input("a", shape=(1,)), Output("b", shape=(1,))], [("a", "c")])
    assert e.value.node == "c"
    with pytest.raises(GraphError):
        Graph([Input("a", shape=(1,)), Output("b", shape=(1,))], [("a", "b"), ("a", "b")])


def test_graph_counts_and_equality():
    g = _rec_graph()
    assert g.neuron_count() == 4
    assert g.synapse_count() == 12 + 16
    assert g == _rec_graph()
    assert g != g.with_node(LIF("lif", tau=0.02, v_threshold=1.0, shape=(4,)))
    assert "recurrent edge rec -> lif" in g.summary()


# ------------------------------------------------------------------------------------------------ verify
def test_verify_accepts_good_graph():
    g = _rec_graph()
    assert verify(g) is g


def test_verify_shape_mismatch():
    nodes = [Input("in", shape=(3,)), Linear("fc", weight=Dense(np.ones((4, 2)))), Output("out", shape=(4,))]
    g = Graph(nodes, [("in", "fc"), ("fc", "out")])
    with pytest.raises(GraphError) as e:
        verify(g)
    assert (e.value.node, e.value.field) == ("fc", "input_shape")


def test_verify_unreachable_node():
    nodes = [Input("in", shape=(3,)), Output("out", shape=(3,)), Threshold("t", threshold=0.5, shape=(3,)),
             Output("out2", shape=(3,))]
    g = Graph(nodes, [("in", "out"), ("t", "out2")])
    with pytest.raises(GraphError) as e:
        verify(g)
    assert e.value.node == "t" and e.value.field == "edges"


def test_verify_dead_end_and_unknown_level():
    nodes = [Input("in", shape=(3,)), Output("out", shape=(3,)), Threshold("t", threshold=0.5, shape=(3,))]
    g = Graph(nodes, [("in", "out"), ("in", "t")])
    with pytest.raises(GraphError) as e:
        verify(g)
    assert e.value.node == "t"
    with pytest.raises(ValueError):
        verify(g, "no-such-level")


def test_register_check_runs_at_its_level():
    calls = []

    def check(graph):
        calls.append(graph)
        if any(isinstance(n, CubaLIF) for n in graph.nodes.values()):
            raise GraphError("no CubaLIF", field="type")

    ir.register_check("partitioned", check)
    g = _rec_graph()
    verify(g, "import")
    assert calls == []
    verify(g, "partitioned")
    assert calls == [g]
    with pytest.raises(ValueError):
        ir.register_check("bogus", check)


def test_affine_bias_shape_checked():
    with pytest.raises(GraphError) as e:
        Affine("fc", weight=Dense(np.ones((2, 3))), bias=np.ones(3))
    assert (e.value.node, e.value.field) == ("fc", "bias")
