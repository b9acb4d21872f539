"""Every private Keras or TensorFlow API fastlstm uses, in one place: the one
file to fix when one of them changes. Each function imports what it needs
when called, so importing this module imports no backend."""


def in_symbolic_scope():
    """Whether Keras asks for shapes only (e.g. its first fit() on PyTorch
    traces the model on meta tensors)."""
    from keras.src.backend import in_symbolic_scope as keras_in_symbolic_scope

    return keras_in_symbolic_scope()


def tf_record_module():
    """TensorFlow's module that says whether a tape records (`record`; `tape`
    before TensorFlow 2.13)."""
    try:
        from tensorflow.python.eager import record
    except ImportError:  # TensorFlow before 2.13
        from tensorflow.python.eager import tape as record
    return record


def tf_cond_branch_graph_class():
    """The FuncGraph class of a tf.cond branch."""
    from tensorflow.python.ops import control_flow_v2_func_graphs

    return control_flow_v2_func_graphs.CondBranchFuncGraph


def tf_func_graph_class():
    import tensorflow as tf

    return tf.__internal__.FuncGraph


def tf_graph_in_xla_context(graph):
    """Whether `graph` or a graph it is nested in is compiled by XLA."""
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(graph)


def tf_in_save_context():
    """Whether tf.saved_model.save() is tracing now."""
    from tensorflow.python.saved_model import save_context

    return save_context.in_save_context()
