"""What the TensorFlow kernels ask of the graph being built: where ops built
now go (a cond branch, an XLA cluster) and whether a gradient may be taken
through them. Private TensorFlow APIs come through `fastlstm._compat`."""

import tensorflow as tf

from fastlstm import _compat


def in_cond_branch():
    """Whether ops built now go into a branch of a tf.cond."""
    branch = _compat.tf_cond_branch_graph_class()
    func_graph = _compat.tf_func_graph_class()
    graph = tf.compat.v1.get_default_graph()
    while isinstance(graph, func_graph):
        if isinstance(graph, branch):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def in_xla_context():
    """Whether ops built now are compiled by XLA (jit_compile=True)."""
    return _compat.tf_graph_in_xla_context(tf.compat.v1.get_default_graph())


def recording(tensors):
    """Whether a gradient may be taken through ops built now on `tensors`.

    Eagerly: whether a tape watches them. While a graph is traced: whether
    any tape is active (a tape outside a traced function differentiates it
    from its graph later). Without a tape, the inference kernels save
    nothing that only a gradient needs; a gradient taken anyway
    (tf.gradients) goes through them by autodiff.
    """
    record = _compat.tf_record_module()
    if tf.executing_eagerly():
        return bool(record.should_record_backprop([t for t in tensors if t is not None]))
    return bool(record.could_possibly_record())


def in_save_context():
    """Whether tf.saved_model.save() is tracing the ops built now."""
    return _compat.tf_in_save_context()
