"""fastlstm.LSTM: keras.layers.LSTM with a kernel chosen per call."""

import dataclasses

import keras
from keras import ops
from keras import tree

from fastlstm import _compat
from fastlstm import _sequence
from fastlstm import _validation
from fastlstm import kernels as _kernels
from fastlstm import planner


@keras.saving.register_keras_serializable(package="fastlstm")
class LSTM(keras.layers.LSTM):
    """Long Short-Term Memory layer - Hochreiter 1997, fast on every backend.

    A drop-in replacement for `keras.layers.LSTM`: the same arguments,
    weights, semantics and saved form, with one more promise: each call runs
    the fastest kernel that gives the reference numbers (Keras's generic
    loop), and `fastlstm.plan()` tells which one and why.

    On a CPU, every backend runs fastlstm's one compiled kernel, its C++ core
    on oneDNN (a TensorFlow op, an XLA FFI call on JAX, a PyTorch custom op);
    on a GPU, every backend runs cuDNN.

    - `cudnn` on a GPU, also for masked batches whose rows are one
      contiguous span each: right-padded rows go in as sequence lengths,
      left-padded rows (the default of `pad_sequences()`) are rotated to the
      front and back.
    - `native` on a CPU, the compiled kernel, with the same handling of
      masks.
    - `loop` otherwise (masks with holes, other activations, recurrent
      dropout, other dtypes): a backend loop with the gates fused and, for
      tanh / sigmoid, a written-out gradient.
    - `unrolled` with `unroll=True`.

    Args: as `keras.layers.LSTM`. Where Keras clips `dropout` and
    `recurrent_dropout` into [0, 1], fastlstm raises a `ValueError`;
    `use_cudnn=True` raises where cuDNN cannot run, naming each unmet
    requirement, on every backend.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        units = _validation.check_units(units)
        dropout = _validation.check_rate("dropout", dropout)
        recurrent_dropout = _validation.check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        _validation.check_activation("activation", activation)
        _validation.check_activation("recurrent_activation", recurrent_activation)
        _validation.check_use_cudnn(use_cudnn)
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            **kwargs,
        )
        # The rank is checked in build() and call(), with a message that
        # names `inputs`, instead of by a generic InputSpec.
        self.input_spec = None

    def build(self, sequences_shape=None, initial_state_shape=None):
        # `sequences_shape` is None when the layer is called on None.
        _validation.check_inputs_shape(sequences_shape)
        if self.stateful:
            _validation.check_stateful_batch(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        # Symbolic calls (keras.Input) get the shape checks of a real call.
        _validation.check_inputs_shape(sequences_shape)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences_shape), tuple(self.cell.kernel.shape)
            )
        return super().compute_output_shape(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # Every check runs here, once, before any kernel: the kernels take
        # float sequences of the built feature size, a boolean
        # (batch, timesteps) mask and (batch, units) states.
        sequences = self._standardize_sequences(sequences)
        mask = self._standardize_mask(mask, sequences)
        initial_state = self._standardize_initial_state(initial_state, sequences)
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    def _standardize_sequences(self, sequences):
        _validation.check_inputs(sequences)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences.shape), tuple(self.cell.kernel.shape)
            )
        if _validation.needs_cast(_validation.dtype_of(sequences)):
            # Keras's loop promotes integer inputs in its first product.
            sequences = ops.cast(sequences, self.compute_dtype)
        return sequences

    def _standardize_mask(self, mask, sequences):
        if isinstance(mask, (list, tuple)) and all(
            m is None or hasattr(m, "shape") for m in mask
        ) and mask:
            # A nested mask (one per input, as Keras passes them): the first
            # is the sequences' mask.
            mask = mask[0]
        if mask is None:
            return None
        _validation.check_mask_type(mask)
        _validation.check_mask(
            tuple(mask.shape), _validation.dtype_of(mask), tuple(sequences.shape)
        )
        return _sequence.standardize_mask(mask, sequences)

    def _standardize_initial_state(self, initial_state, sequences):
        if initial_state is None:
            return None
        states = (
            list(initial_state)
            if isinstance(initial_state, (list, tuple))
            else [initial_state]
        )
        batch = sequences.shape[0]
        _validation.check_initial_state(states, batch, self.units)
        # A (1, units) state is every row's, as Keras broadcasts it.
        return [
            ops.broadcast_to(s, (ops.shape(sequences)[0], self.units))
            if _validation.state_shape(s)[0] == 1 and batch != 1
            else s
            for s in states
        ]

    def plan(self, sequences, mask=None, training=False, device=None):
        """The `fastlstm.planner.Plan` for calling this layer on `sequences`.

        `sequences` and `mask` are checked and brought to the form the
        kernels take, as a call does; only their shapes, dtypes and the
        mask's layout matter.
        """
        _validation.check_inputs(sequences)
        if self.cell.built:
            _validation.check_feature_size(
                tuple(sequences.shape), tuple(self.cell.kernel.shape)
            )
        mask = self._standardize_mask(mask, sequences)
        dtype = _validation.dtype_of(sequences)
        if _validation.needs_cast(dtype) or self.autocast:
            # What the call computes in: Layer.__call__ casts float inputs
            # to the compute dtype, and call() casts the others.
            dtype = self.compute_dtype
        # As the backend holds it: JAX without x64 computes float64 in float32.
        dtype = _validation.dtype_of(ops.zeros((), dtype))
        return self._decide(dtype, mask, training, sequences.shape[0], device)

    def _decide(self, dtype, mask, training, batch, device=None):
        """The planner's decision from the facts of one call, each taken as
        the kernels will see it: the one place that gathers them."""
        capabilities = _kernels.get().capabilities()
        if device is not None:
            capabilities = dataclasses.replace(capabilities, device=device)
        cell = self.cell
        return planner.decide(
            capabilities=capabilities,
            activation=planner.activation_name(cell.activation),
            recurrent_activation=planner.activation_name(cell.recurrent_activation),
            use_bias=cell.use_bias,
            unroll=self.unroll,
            dropout=cell.dropout,
            recurrent_dropout=cell.recurrent_dropout,
            implementation=cell.implementation,
            use_cudnn=self.use_cudnn,
            mask=_sequence.mask_layout(mask),
            training=bool(training),
            dtype=dtype,
            batch=batch,
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        plan = self._decide(
            _validation.dtype_of(sequences), mask, training, sequences.shape[0]
        )
        cell = self.cell
        dtype = sequences.dtype
        h0, c0 = (ops.cast(s, dtype) for s in initial_state)
        if _compat.in_symbolic_scope():
            # Keras asks for shapes only (e.g. its first fit() on PyTorch
            # traces the model on meta tensors): no recurrence to run.
            return self._symbolic_outputs(sequences, h0, c0)
        weights = _kernels.Weights(
            ops.cast(cell.kernel, dtype),
            ops.cast(cell.recurrent_kernel, dtype),
            None if cell.bias is None else ops.cast(cell.bias, dtype),
        )
        # Keras's cell draws one input-dropout mask for every step and gate,
        # or four per-gate masks (implementation 1, with recurrent dropout).
        dropout = _kernels.Dropout(
            cell.get_dropout_mask(sequences[:, 0, :])
            if training and 0.0 < cell.dropout < 1.0 else None,
            cell.get_recurrent_dropout_mask(h0)
            if training and 0.0 < cell.recurrent_dropout < 1.0 else None,
        )
        x = sequences
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        options = _kernels.Options(
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            layout=_sequence.in_processing_order(plan.mask, self.go_backwards),
            bf16_products=plan.bf16_products,
        )
        # The kernel the plan names, and no other.
        last, outputs, h, c = _kernels.run(plan, x, h0, c0, weights, mask, dropout, options)
        if outputs is None:
            outputs = ops.expand_dims(last, 1)
        return last, outputs, [h, c]

    def _symbolic_outputs(self, sequences, h0, c0):
        last = ops.zeros_like(h0)
        outputs = ops.expand_dims(last, 1)
        if self.return_sequences:
            batch, steps = ops.shape(sequences)[0], ops.shape(sequences)[1]
            outputs = ops.zeros((batch, steps, self.units), sequences.dtype)
        return last, outputs, [h0, c0]

    def get_config(self):
        config = super().get_config()
        config["use_cudnn"] = self.use_cudnn
        return config
